"""What a restart reads besides the facts to rebuild the engine as it was
(engine/service/recovery.py): the rule sets loaded (by hash, in load order) and when and
where in the fact log each took effect, and by whom (cut-overs, an audit chain of their
own: audit.py), the clock ticks between facts, and snapshots of the engine's state so that
only what came after the newest one is replayed.

A rule set is served only while its files still hash to its version, and a cut-over only
while it is a link of its chain: what the service puts in force again on a restart, and
shows in traces, is what was recorded.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime

import peewee as pw

from engine.store.audit import AuditChains, body_text, cutover_body
from engine.store.encoding import canonical_json, instant_text, now_text
from schemas.values import parse_instant

log = logging.getLogger("slm.store")


class ReplayRecords(AuditChains):
    """Rule sets, cut-overs, ticks and snapshots."""

    # ---- rule sets ---------------------------------------------------------------------

    def save_ruleset(self, hash: str, files: dict[str, str]) -> None:
        """Record a loaded rule set; loading a known one again makes it the latest. The
        owners of several partitions put the same rule set in force at once: the one that
        stores it second finds it stored."""
        R = self.m.RuleSet
        with self.transaction():
            generation = (R.select(pw.fn.MAX(R.generation)).scalar() or 0) + 1
            now = now_text()
            (R.insert(hash=hash, files=canonical_json(files), loaded_at=now, generation=generation)
             .on_conflict(conflict_target=[R.hash], update={R.generation: generation, R.loaded_at: now})
             .execute())

    def ruleset_files(self, hash: str) -> dict[str, str] | None:
        """The files of a recorded rule set, by its hash (None if unknown), by their paths
        relative to its rules directory."""
        from engine.lang.loader import version_of  # the one definition of a version

        R = self.m.RuleSet
        row = R.select(R.files).where(R.hash == hash).first()
        if row is None:
            return None
        files = json.loads(row.files)
        if not isinstance(files, dict) or version_of(files) != hash:
            log.error("the stored files of rule set %s do not hash to its version (edited outside the service): "
                      "not used; slm audit verify names it", hash[:19])
            return None
        return files

    # ---- cut-overs ---------------------------------------------------------------------

    def add_cutover(self, ruleset: str, at, after_fact: int, after_tick: int, by: str | None = None) -> None:
        """Record, chained, that ``ruleset`` took effect at ``at``, after that fact and tick,
        put in force by ``by`` (a token's name; ``slm serve`` for a start)."""
        when = instant_text(at, "cut-over")
        row = dict(ruleset=ruleset, at=when, after_fact=after_fact, after_tick=after_tick, by=by,
                   body=cutover_body(ruleset, when, after_fact, after_tick, by), partition=self.partition)
        C = self.m.Cutover
        with self.transaction():
            head = self._locked_head("cutovers")
            self._link(head, [row], body_text)
            self._insert(C, [row])
            head.last_id = ruleset
            self._save_head(head, self._select(C, "MAX(seq)")[0][0])

    def cutovers(self) -> list[dict]:
        """Every rule set that took effect in this store's partition, in order: ``{seq,
        ruleset, at, after_fact, after_tick, by}`` (the links of the cut-over chain only;
        ``after_fact`` and ``after_tick`` are places in the partition's log)."""
        C = self.m.Cutover
        return [{"seq": r.seq, "ruleset": r.ruleset, "at": parse_instant(r.at), "after_fact": r.after_fact,
                 "after_tick": r.after_tick, "by": r.by}
                for r in C.select().where(self._in_chain("cutovers", C) & (C.partition == self.partition))
                .order_by(C.seq)]

    # ---- ticks -------------------------------------------------------------------------

    def add_tick(self, after_fact: int, until) -> int:
        """Record a tick; its seq."""
        with self.transaction():
            return self.m.Tick.insert(after_fact=after_fact, until=instant_text(until, "tick"),
                                      partition=self.partition).execute()

    def ticks(self, after_seq: int = 0) -> list[tuple[int, int, datetime]]:
        """``(seq, after_fact, until)`` of this store's partition in the order they happened,
        after tick ``after_seq``."""
        T = self.m.Tick
        return [(r.seq, r.after_fact, parse_instant(r.until))
                for r in T.select(T.seq, T.after_fact, T.until)
                .where((T.seq > after_seq) & (T.partition == self.partition)).order_by(T.seq)]

    # ---- engine snapshots --------------------------------------------------------------

    def save_snapshot(self, ruleset: str, state_format: str, fact_seq: int, tick_seq: int,
                      body: bytes, keep: int = 2) -> None:
        """Store a snapshot of the engine's state in ``state_format`` (the version of the
        engine's snapshot format) for this store's partition; only its newest ``keep`` are kept."""
        S = self.m.Snapshot
        with self.transaction():
            S.insert(ruleset=ruleset, state_format=state_format, fact_seq=fact_seq, tick_seq=tick_seq,
                     body=body, created_at=now_text(), partition=self.partition).execute()
            stale = [r.seq for r in S.select(S.seq).where(S.partition == self.partition)
                     .order_by(S.seq.desc()).offset(keep)]
            if stale:
                S.delete().where(S.seq.in_(stale)).execute()

    def latest_snapshot(self, ruleset: str | None, state_format: str) -> dict | None:
        """The newest snapshot in this state format (and taken under this rule set, unless
        ``ruleset`` is None), if any."""
        S = self.m.Snapshot
        where = (S.state_format == state_format) & (S.partition == self.partition)
        if ruleset is not None:
            where &= S.ruleset == ruleset
        row = S.select().where(where).order_by(S.seq.desc()).first()
        if row is None:
            return None
        return {"fact_seq": row.fact_seq, "tick_seq": row.tick_seq, "body": bytes(row.body),
                "created_at": row.created_at, "ruleset": row.ruleset}
