"""What a new process owner meets in ``slm check`` (issue 20, items 11, 16 and 17): every
mistake is an error at file:line, one root mistake gives one error, and nothing prints a
traceback."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from cli import main
from engine.lang.errors import RuleSetError
from engine.lang.loader import load_texts
from tests.lang.test_loader import BASE


def problems_of(files: dict[str, str]) -> list[str]:
    with pytest.raises(RuleSetError) as caught:
        load_texts(files)
    return [str(p) for p in caught.value.problems]


def test_a_yaml_integer_of_5000_digits_is_one_error_at_its_line_and_no_traceback(tmp_path):
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "cal.yaml").write_text("kind: Calendar\nid: c\ntimezone: UTC\nhours:\n  mon-fri: " + "9" * 5000 + "\n")
    result = CliRunner().invoke(main, ["check", str(tmp_path)])
    assert result.exit_code == 1 and result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    (line,) = [line for line in result.output.splitlines() if "cal.yaml" in line]
    assert line.startswith(f"{tmp_path / 'cal.yaml'}:5:12: cannot read value: a number of 5000 digits")


# ---- item 16: holders are places a notification can go --------------------------------

@pytest.mark.parametrize("holder, expected", [
    ("htp://hooks.example.org/slm", "did you mean http://?"),
    ("vpn owner at example", "neither an e-mail address nor a URL"),
    ("https://", "not a complete https URL"),
    ("owner@", "neither an e-mail address nor a URL"),
    ("slack://", "no slack:// URL Apprise can send to"),
])
def test_a_holder_no_notification_can_reach_is_an_error_at_its_line(holder, expected):
    base = BASE.replace("slm-mail@example.org", holder)
    found = problems_of({"base.yaml": base})
    (problem,) = [p for p in found if holder in p]
    line = base.splitlines().index(f"  service_level_manager: {holder}") + 1
    assert problem.startswith(f"base.yaml:{line}:") and expected in problem, problem


@pytest.mark.parametrize("holder", ["slm-mail@example.org", "https://hooks.example.org/slm?x=1",
                                    "http://intranet:8080/hook", "slack://T1/B2/C3", "tgram://123456789:abcdefg_hijklmnop/123",
                                    "mailto://user:pass@example.org"])
def test_e_mail_addresses_and_http_or_apprise_urls_are_holders(holder):
    load_texts({"base.yaml": BASE.replace("slm-mail@example.org", holder)})
