"""The decision ledger: every decision once, chained so tampering is found.

Every decision is stored as its canonical JSON and chained: ``hash = MAC(prev_hash +
canonical_json(decision))``, the first ``prev_hash`` being :data:`GENESIS` (64 zeros), the
MAC HMAC-SHA-256 under the audit key or, without one, SHA-256 (chain.py), so an edited,
deleted or re-hashed record is found by :meth:`Ledger.verify_chain`. A row of the
``chain_head`` table holds the last record's seq, id and hash: appends lock it (audit.py)
so concurrent writers never fork the chain, and it reveals records cut off the end.

``chain_head`` is keyed by name; the decision chain's row is ``decisions``. It is one
chain for every partition: each owner appends under the head's lock, so the chain's order
is the order the owners' transactions committed in (each decision row keeps its partition).
"""
from __future__ import annotations

import json
from datetime import datetime

from engine.store.audit import AuditChains, body_text, retracted_of
from engine.store.base import between, chunks, equal, where
from engine.store.encoding import canonical_json, instant_text, required_text

CHAIN = "decisions"          # the chain head row's name


class Ledger(AuditChains):
    """Decisions: appended in chain order, read by id or in pages, verified end to end."""

    def add_decisions(self, decisions) -> list[str]:
        """Append the decisions not yet stored, chained in the order given; their ids."""
        decisions = list(decisions)
        rows = [dict(self._decision_row(d), partition=self.partition) for d in decisions]
        if not rows:
            return []
        D = self.m.Decision
        with self.transaction():
            head = self._locked_head(CHAIN)
            known = self._existing(D, [r["id"] for r in rows])
            seq, fresh = head.seq, []
            for row in rows:
                if row["id"] in known:
                    continue
                known.add(row["id"])
                seq += 1
                row["seq"] = seq
                fresh.append(row)
            if fresh:
                self._advance(head, fresh, body_text, seq)
                self._insert(D, fresh)
        return [row["id"] for row in fresh]

    @staticmethod
    def _decision_row(decision: dict) -> dict:
        rule = decision.get("rule") or {}
        return dict(id=required_text(decision, "id", "a decision"),
                    kind=required_text(decision, "kind", "a decision"),
                    target=decision.get("target"), subject=decision.get("subject"),
                    service=decision.get("service"), agreement=decision.get("agreement"),
                    at=instant_text(decision.get("at"), "decision at"),
                    ruleset=rule.get("ruleset") if isinstance(rule, dict) else None,
                    retracts=retracted_of(decision), body=canonical_json(decision))

    def decision(self, id: str) -> dict | None:
        """The decision ``id`` as recorded, if it is a link of the decision chain."""
        D = self.m.Decision
        row = D.select(D.body).where((D.id == id) & self._in_chain(CHAIN, D)).first()
        return None if row is None else json.loads(row.body)

    def decisions_by_id(self, ids) -> dict[str, dict]:
        """The stored decisions among ``ids``, by id (one query per chunk)."""
        D = self.m.Decision
        found: dict[str, dict] = {}
        chained = self._in_chain(CHAIN, D)
        for chunk in chunks(sorted(set(ids))):
            found.update((r.id, json.loads(r.body))
                         for r in D.select(D.id, D.body).where(D.id.in_(chunk) & chained))
        return found

    def retractions(self, ids) -> dict[str, dict]:
        """``{id, at, reason}`` of the retraction of each decision among ``ids`` that was
        retracted (the first, should there be several), by the retracted decision's id."""
        D = self.m.Decision
        found: dict[str, dict] = {}
        chained = self._in_chain(CHAIN, D)
        for chunk in chunks(sorted(set(ids))):
            rows = D.select(D.retracts, D.body).where(D.retracts.in_(chunk) & chained).order_by(D.seq)
            for row in rows:
                if row.retracts not in found:
                    body = json.loads(row.body)
                    found[row.retracts] = {"id": body["id"], "at": body["at"],
                                           "reason": (body.get("data") or {}).get("reason")}
        return found

    def with_retractions(self, decisions: list[dict]) -> list[dict]:
        """``decisions`` with ``retracted_by`` (:meth:`retractions`) on each that was retracted."""
        found = self.retractions([d["id"] for d in decisions])
        return [{**d, "retracted_by": found[d["id"]]} if d["id"] in found else d for d in decisions]

    def list_decisions(self, service=None, target=None, subject=None, kind=None, since=None,
                       until=None, cursor=None, limit=None, retracted: bool | None = None,
                       ) -> tuple[list[dict], str | None]:
        """A page of decisions in log order; since/until bound ``at`` as [since, until);
        ``retracted``: only those later retracted (True) or only the others (False)."""
        D = self.m.Decision
        terms = equal(D, service=service, target=target, subject=subject, kind=kind) + between(D.at, since, until)
        if retracted is not None:
            R = D.alias("r")
            retractions = R.select(R.retracts).where(R.retracts.is_null(False) & self._in_chain(CHAIN, R))
            terms.append(D.id.in_(retractions) if retracted else D.id.not_in(retractions))
        query = where(D.select(D.seq, D.body), terms + [self._in_chain(CHAIN, D)])
        return self._page(query, D.seq, cursor, limit, lambda r: json.loads(r.body))

    def standing_decisions(self, kind: str, target: str, at: datetime, service: str | None = None,
                           subject: str | None = None, limit: int | None = None) -> list[dict]:
        """Decisions of ``kind`` and ``target`` at or before ``at`` (of ``service`` and
        ``subject`` when given) that no later decision retracted, newest first."""
        D, R = self.m.Decision, self.m.Decision.alias("r")
        retracted = R.select(R.retracts).where(R.retracts.is_null(False) & self._in_chain(CHAIN, R))
        query = where(D.select(D.body), equal(D, kind=kind, target=target, service=service, subject=subject)
                      + [D.at <= instant_text(at, "at"), D.id.not_in(retracted), self._in_chain(CHAIN, D)])
        return [json.loads(row.body) for row in query.order_by(D.at.desc(), D.seq.desc()).limit(limit)]

    def decision_count(self) -> int:
        return self.m.Decision.select().count()

    def verify_chain(self) -> dict:
        """The decision chain walked end to end (see :meth:`AuditChains.verify_audit` for
        every chain and checkpoints): ok, records checked, the first broken one."""
        result = self.verify_audit()["chains"]["decisions"]
        return {key: result[key] for key in ("ok", "checked", "first_broken")}
