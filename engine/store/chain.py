"""The audit chains: decisions, facts, notifications, their delivery outcomes, the rule
changes (cut-overs: which rule set was put in force, when and by whom), silences
(created, expired: by whom, why) and the waivers (each request, approval and
revocation, by whom), each a chain of MACs kept by a
head row that is itself sealed, so a record cannot be rewritten, removed or cut off
unseen by someone who can write the database but does not hold the audit key.

Each record's ``hash`` is ``MAC(prev_hash + text)`` where the text is the record's
canonical JSON (a fact's with its outcome). The MAC is HMAC-SHA-256 under the audit key
(a file outside the database: :func:`load_key`) from the head's ``keyed_from`` on; before
it, and in a store opened without a key, it is plain SHA-256 (what every release before
keyed chains wrote: such a record is evidence against accidents, not against someone who
can recompute it). The head (``chain_head``: last seq, record count, last hash, where
the chain and its keyed part start) is sealed with the same MAC, so moving it — cutting
records off the end, truncating the table — needs the key too.

What this cannot show on its own: a database wiped whole and started again, or a keyed
chain replaced by an unkeyed one from the start, looks like a younger database. A
checkpoint (:func:`checkpoint`), kept by an auditor elsewhere, proves that everything up
to it is still there and unchanged (docs/THREAT_MODEL.md).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

GENESIS = "0" * 64
CHAINS = ("decisions", "facts", "notifications", "deliveries", "cutovers", "silences", "waivers", "restatements")
CHECKPOINT_FORMAT = "slm-audit-checkpoint/1"


class AuditKeyError(RuntimeError):
    """The audit key is missing, unreadable, or not the one the chain was sealed with."""


def load_key(path: str | os.PathLike, create: bool = False) -> bytes:
    """The audit key in ``path`` (64 hex digits). With ``create``, a missing file is made
    with a fresh random key, readable by its owner only (0600)."""
    path = Path(path)
    if create and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32) + "\n")
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise AuditKeyError(f"cannot read the audit key file {path}: {exc.strerror}") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise AuditKeyError(f"{path} does not hold an audit key (at least 32 hex digits)")
    if os.name == "posix" and path.stat().st_mode & 0o077:
        raise AuditKeyError(f"{path} is readable by others; chmod 600 it")
    return key


def chain_hash(prev_hash: str, body: str) -> str:
    """The unkeyed link: ``sha256(prev_hash + body)``."""
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def link(key: bytes | None, prev_hash: str, text: str) -> str:
    """A record's hash: HMAC-SHA-256 under ``key``, or the unkeyed link without one."""
    if key is None:
        return chain_hash(prev_hash, text)
    return hmac.new(key, (prev_hash + text).encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass
class Head:
    """A chain's head row."""

    name: str
    seq: int                  # seq of the last record (0: none yet)
    count: int                # records in the chain
    hash: str                 # the last record's hash (GENESIS: none yet)
    last_id: str | None
    chained_from: int         # the first seq in the chain (older rows predate chaining)
    keyed_from: int | None    # the first seq linked with the audit key (None: none is)
    mac: str | None

    def fields(self) -> str:
        return json.dumps([self.name, self.seq, self.count, self.hash, self.last_id,
                           self.chained_from, self.keyed_from], separators=(",", ":"))

    def seal(self, key: bytes | None) -> None:
        self.mac = link(key if self.keyed_from is not None else None, "head", self.fields())

    def sealed(self, key: bytes | None) -> bool:
        return self.mac is not None and hmac.compare_digest(
            self.mac, link(key if self.keyed_from is not None else None, "head", self.fields()))

    def key_for(self, seq: int, key: bytes | None) -> bytes | None:
        return key if self.keyed_from is not None and seq >= self.keyed_from else None


def extend(head: Head, key: bytes | None, rows: list[dict], text) -> None:
    """Link ``rows`` (in order) after ``head``: set their ``prev_hash`` and ``hash`` and
    move the head (not its ``seq``: the caller knows the seqs). A keyed store writing
    on an unkeyed chain starts the keyed part here; a store without the key refuses to
    write on a keyed chain (it would append records nobody can tell from forged ones)."""
    if not rows:
        return
    if head.keyed_from is not None and key is None:
        raise AuditKeyError(f"the {head.name} chain is sealed with an audit key: open the store "
                            "with it (--audit-key-file or SLM_AUDIT_KEY_FILE)")
    if key is not None and head.keyed_from is None:
        head.keyed_from = head.seq + 1
    prev = head.hash
    for row in rows:
        row["prev_hash"] = prev
        row["hash"] = prev = link(key, prev, text(row))
    last = rows[-1]
    head.hash, head.count = prev, head.count + len(rows)
    head.last_id = last.get("id", last.get("notification", last.get("waiver")))


def checkpoint(heads: dict[str, Head], key: bytes, at: str) -> dict:
    """A signed statement of where each chain stood: what an auditor keeps elsewhere."""
    body = {"format": CHECKPOINT_FORMAT, "at": at,
            "chains": {name: {"seq": h.seq, "count": h.count, "hash": h.hash} for name, h in heads.items()}}
    return {**body, "mac": link(key, "checkpoint", _canonical(body))}


def checkpoint_problem(point: dict, key: bytes | None) -> str | None:
    """Why a checkpoint cannot be trusted (None if its signature holds)."""
    if not isinstance(point, dict) or point.get("format") != CHECKPOINT_FORMAT:
        return f"not a checkpoint (format {CHECKPOINT_FORMAT})"
    if key is None:
        return "a checkpoint is checked with the audit key (--audit-key-file)"
    body = {k: v for k, v in point.items() if k != "mac"}
    if not hmac.compare_digest(str(point.get("mac")), link(key, "checkpoint", _canonical(body))):
        return "the checkpoint's signature does not verify with this audit key"
    return None


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
