"""Console sessions that were signed out, so that a copy of their cookie opens nothing on
any process that serves the console, now or after a restart.

A session is known by the SHA-256 of its id (the cookie holds the id, signed by the
server). Each row is kept until the cookie would have expired anyway (``until``): later
the cookie is refused for its age alone, so the row is pruned as another session ends.
"""
from __future__ import annotations

import hashlib
from datetime import datetime

from engine.store.base import StoreBase
from engine.store.encoding import instant_text


def session_digest(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


class EndedSessions(StoreBase):
    """Record and look up signed-out console sessions. Not partition data: the writes are
    not fenced by a partition's lease, so any node (an API node, a standby) may record one."""

    def end_session(self, sid: str, until: datetime, now: datetime) -> None:
        """Record that session ``sid`` was signed out at ``now``, to be refused until
        ``until``; rows whose time has passed by ``now`` are pruned in the same transaction."""
        E = self.m.EndedSession
        with self.transaction(fenced=False):
            self._prune_ended(now)
            (E.insert(sid_hash=session_digest(sid), ended_at=instant_text(now, "now"),
                      until=instant_text(until, "until"))
             .on_conflict(conflict_target=[E.sid_hash], update={E.until: instant_text(until, "until")})
             .execute())

    def session_ended(self, sid: str) -> bool:
        """Whether session ``sid`` was signed out (one primary-key look-up)."""
        rows = self._select(self.m.EndedSession, "1", f"sid_hash = {self.db.param}", [session_digest(sid)])
        return bool(rows)

    def prune_ended_sessions(self, now: datetime) -> int:
        """Forget the sessions whose cookies have expired by ``now``; how many were."""
        with self.transaction(fenced=False):
            return self._prune_ended(now)

    def _prune_ended(self, now: datetime) -> int:
        E = self.m.EndedSession
        return E.delete().where(E.until <= instant_text(now, "now")).execute()
