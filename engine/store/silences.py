"""Silences in the store: each event (created, expired) appended to the ``silences`` chain
(chain.py), never changed. What a silence is, is its events folded
(engine/notify/silence.py): the store keeps and chains them, and knows nothing more."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from engine.store.audit import AuditChains, body_text
from engine.store.encoding import canonical_json, instant_text


class Silences(AuditChains):
    """The chained events of silences."""

    def add_silence_event(self, id: str, event: str, at: datetime, body: dict[str, Any]) -> None:
        """Append one event of silence ``id`` (its body is what the chain covers)."""
        with self.transaction():
            head = self._locked_head("silences")
            row = {"id": id, "event": event, "at": instant_text(at, "at"),
                   "body": canonical_json({"event": event, "id": id, **body})}
            self._link(head, [row], body_text)
            self._insert(self.m.Silence, [row])
            self._save_head(head, self._select(self.m.Silence, "MAX(seq)")[0][0])

    def silences_version(self) -> int:
        """The newest event's number (0: none yet): when it is unchanged, so are the silences."""
        return self._select(self.m.Silence, "MAX(seq)")[0][0] or 0

    def silence_events(self) -> list[dict[str, Any]]:
        """Every event, oldest first: the chain's links only (a row written outside the
        service is not one, and is named by the audit, never served)."""
        S = self.m.Silence
        rows = S.select(S.body).where(self._in_chain("silences", S)).order_by(S.seq)
        return [json.loads(row.body) for row in rows]
