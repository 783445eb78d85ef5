"""The signed links that acknowledge an escalation (engine/notify/acklink.py)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.notify.acklink import AckLinks, LinkError, link_key

T0 = datetime(2026, 11, 5, 4, tzinfo=UTC)


def test_a_link_names_its_notification_until_it_expires():
    links = AckLinks(link_key("k", None), ttl=timedelta(hours=72))
    token = links.token("ntf_1", T0)
    assert links.open(token, T0 + timedelta(hours=72) - timedelta(seconds=1)) == "ntf_1"
    with pytest.raises(LinkError) as expired:
        links.open(token, T0 + timedelta(hours=72))
    assert expired.value.expired


@pytest.mark.parametrize("change", [lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), lambda t: t.split(".")[0],
                                    lambda t: "x" + t, lambda t: ""])
def test_a_changed_or_foreign_link_is_refused(change):
    links = AckLinks(link_key("k", None))
    with pytest.raises(LinkError) as refused:
        links.open(change(links.token("ntf_1", T0)), T0)
    assert not refused.value.expired
    other = AckLinks(link_key(None, b"another key"))
    with pytest.raises(LinkError):
        other.open(links.token("ntf_1", T0), T0)


def test_the_key_is_derived_from_the_secret_key_else_the_audit_key():
    assert link_key(None, None) is None
    assert link_key("s", b"a") == link_key("s", None) != link_key(None, b"a")
    assert link_key("s", None) != b"s"
    links = AckLinks(link_key("s", None))
    assert links.form_token("t1") != links.form_token("t2")
