"""``slm silence`` on a database: add, list, expire, each event chained."""
from __future__ import annotations

import json

from click.testing import CliRunner

from cli import main
from engine.notify.silence import SilenceCache
from engine.store.store import Store


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_add_list_and_expire_a_silence(tmp_path):
    db = f"sqlite:///{tmp_path / 'slm.db'}"
    made = run("silence", "add", "--service", "email", "--subject", "INC-*", "--for", "2h",
               "--reason", "relay swap", "--by", "ann", "--db", db)
    assert made.exit_code == 0, made.output
    silence = json.loads(made.output)
    assert (silence["matchers"], silence["created_by"], silence["state"]) == (
        {"service": "email", "subject": "INC-*"}, "ann", "active")
    listed = run("silence", "list", "--db", db).output.splitlines()
    assert len(listed) == 1 and listed[0].startswith(f"{silence['id']}  active ")
    assert listed[0].endswith("service=email subject=INC-*  by ann: relay swap")
    ended = run("silence", "expire", silence["id"], "--by", "bob", "--db", db)
    assert ended.exit_code == 0 and run("silence", "list", "--db", db).output == ""
    assert f"{silence['id']}  expired" in run("silence", "list", "--all", "--db", db).output
    again = run("silence", "expire", silence["id"], "--db", db)
    assert again.exit_code == 1 and "has ended already" in again.output
    with Store.open(db) as store:
        chain = store.verify_audit()["chains"]["silences"]
        assert chain["ok"] and chain["checked"] == 2


def test_a_silence_of_everything_or_of_no_length_is_refused(tmp_path):
    db = f"sqlite:///{tmp_path / 'slm.db'}"
    everything = run("silence", "add", "--for", "1h", "--reason", "r", "--db", db)
    assert everything.exit_code == 2 and "at least one of service, target, subject, recipient" in everything.output
    no_end = run("silence", "add", "--service", "email", "--reason", "r", "--db", db)
    assert no_end.exit_code == 2 and "--for DURATION or --until TIME" in no_end.output


def test_a_reader_sees_each_silence_another_process_adds_or_expires(tmp_path):
    """The cache every notifying write reads silences through folds the events again
    exactly when one was added, here by the CLI as by another process."""
    db = f"sqlite:///{tmp_path / 'slm.db'}"
    cache = SilenceCache()
    with Store.open(db) as store:
        assert cache.read(store) == {}
        first = cache.read(store)
        assert cache.read(store) is first                      # nothing added: not read again
        made = json.loads(run("silence", "add", "--service", "email", "--for", "2h", "--reason", "swap",
                              "--by", "ann", "--db", db).output)
        seen = cache.read(store)
        assert list(seen) == [made["id"]] and seen[made["id"]].expired_at is None
        run("silence", "expire", made["id"], "--by", "bob", "--db", db)
        assert cache.read(store)[made["id"]].expired_by == "bob"
