"""What the commands share: defaults from the environment, and opening the store."""
from __future__ import annotations

import os

import click

DEFAULT_RULES = os.environ.get("SLM_RULES", "rules")
DEFAULT_DB = os.environ.get("SLM_DATABASE_URL", "sqlite:///slm.db")
DB_HELP = "sqlite:///path.db or postgresql://user@host/db (env SLM_DATABASE_URL)."
DEFAULT_AUDIT_KEY = os.environ.get("SLM_AUDIT_KEY_FILE")
AUDIT_KEY_HELP = ("File holding the key of the audit chains, kept outside the database "
                  "(env SLM_AUDIT_KEY_FILE).")


def audit_key(path: str | None, create: bool = False) -> bytes | None:
    """The audit key in ``path`` (None without a path), or a clean exit saying why not."""
    if not path:
        return None
    from engine.store.chain import AuditKeyError, load_key
    try:
        return load_key(path, create=create)
    except AuditKeyError as err:
        raise click.BadParameter(str(err), param_hint="--audit-key-file") from None


def open_store(url: str, key: bytes | None = None):
    """The store at ``url``, or a clean exit naming what is wrong with it."""
    from engine.store.store import Store
    try:
        return Store.open(url, audit_key=key)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--db") from None
    except Exception as err:        # the driver's own error: unreachable server, bad path …
        raise click.ClickException(f"cannot open database {url.split('@')[-1]}: "
                                   f"{' '.join(str(err).split())}") from None
