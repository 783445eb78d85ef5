"""Silences (engine/notify/silence.py): what a silence matches and when it mutes."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.notify.silence import SilenceError, expired_event, from_events, new_silence, silence
from schemas.records import Decision, Notification

T0 = datetime(2026, 11, 5, 4, tzinfo=UTC)


def decision(service="email", target="email-p1-response", subject="INC-1"):
    return Decision(id="dec_1", kind="escalation", target=target, subject=subject, service=service,
                    agreement="sla-email", at=T0, shadow=False, data={}, rule={}, because=[], activity="breach")


def note(recipient="slm-mail@example.org", status="pending"):
    return Notification(id="ntf_1", decision="dec_1", activity="breach", recipient=recipient, roles=["r"], raci="R",
                        channel="email", message="m", status=status)


def made(hours=2, **matchers):
    return new_silence(matchers or {"service": "email"}, T0, T0 + timedelta(hours=hours), "ann", "relay swap", T0)


@pytest.mark.parametrize("matchers, mutes", [
    ({"service": "email"}, True), ({"service": "hosting"}, False),
    ({"subject": "INC-*"}, True), ({"subject": "INC-1?"}, False),
    ({"service": "email", "recipient": "*@example.org"}, True),
    ({"service": "email", "recipient": "*@example.com"}, False),
    ({"target": "email-p?-response"}, True),
])
def test_every_matcher_must_match(matchers, mutes):
    assert made(**matchers).mutes(decision(), note()) is mutes


def test_a_matcher_on_a_field_the_decision_lacks_never_matches():
    assert not made(subject="*x*").mutes(decision(subject=None), note())


def test_it_is_pending_then_active_then_expired_and_expiring_early_ends_it():
    s = made(hours=2)
    later = new_silence({"service": "email"}, T0 + timedelta(hours=1), T0 + timedelta(hours=2), "ann", "r", T0)
    assert later.state(T0) == "pending" and later.state(T0 + timedelta(hours=1)) == "active"
    assert s.state(T0) == "active" and s.state(T0 + timedelta(hours=2) - timedelta(microseconds=1)) == "active"
    assert s.state(T0 + timedelta(hours=2)) == "expired"
    events = [{"event": "created", "id": s.id, **s.as_dict()},
              {"event": "expired", "id": s.id, **expired_event("bob", T0 + timedelta(minutes=30))},
              {"event": "expired", "id": s.id, **expired_event("carol", T0 + timedelta(minutes=50))}]
    (folded,) = from_events(events).values()
    assert (folded.expired_by, folded.until) == ("bob", T0 + timedelta(minutes=30))
    assert folded.state(T0 + timedelta(minutes=30)) == "expired"


def test_an_active_silence_mutes_pending_notifications_naming_itself():
    s = made()
    (muted,) = silence(decision(), [note()], [s], T0 + timedelta(minutes=1))
    assert muted.status == "muted"
    assert muted.last_error == f"silenced by {s.id} until 2026-11-05T06:00:00Z (ann: relay swap)"
    (kept,) = silence(decision(), [note()], [s], T0 + timedelta(hours=3))      # expired: sent as usual
    assert kept.status == "pending" and kept.last_error is None
    (shadow,) = silence(decision(), [note(status="muted")], [s], T0)              # muted already: left alone
    assert shadow.last_error is None


@given(st.integers(-300, 300), st.integers(1, 240))
def test_it_mutes_exactly_from_its_start_to_its_end(offset_minutes, length_minutes):
    start = T0 + timedelta(minutes=offset_minutes)
    s = new_silence({"service": "email"}, start, start + timedelta(minutes=length_minutes), "ann", "r",
                    min(T0, start))
    for at in (start - timedelta(seconds=1), start, start + timedelta(minutes=length_minutes) - timedelta(seconds=1),
               start + timedelta(minutes=length_minutes)):
        (out,) = silence(decision(), [note()], [s], at)
        assert (out.status == "muted") == (start <= at < start + timedelta(minutes=length_minutes))


@pytest.mark.parametrize("matchers, ends, reason, field", [
    ({}, 2, "r", "matchers"), ({"service": "*"}, 2, "r", "matchers.service"),
    ({"severity": "x"}, 2, "r", "matchers.severity"), ({"service": "email"}, 0, "r", "ends_at"),
    ({"service": "email"}, 2, " ", "reason"),
])
def test_a_silence_that_would_mute_everything_nothing_or_for_no_reason_is_refused(matchers, ends, reason, field):
    with pytest.raises(SilenceError) as refused:
        new_silence(matchers, T0, T0 + timedelta(hours=ends), "ann", reason, T0)
    assert field in refused.value.details
