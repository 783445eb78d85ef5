"""What the commands share: defaults from the environment, and opening the store."""
from __future__ import annotations

import os

import click

DEFAULT_RULES = os.environ.get("SLM_RULES", "rules")
DEFAULT_DB = os.environ.get("SLM_DATABASE_URL", "sqlite:///slm.db")
DB_HELP = "sqlite:///path.db or postgresql://user@host/db (env SLM_DATABASE_URL)."


def open_store(url: str):
    """The store at ``url``, or a clean exit naming what is wrong with it."""
    from engine.store.store import Store
    try:
        return Store.open(url)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--db") from None
    except Exception as err:        # the driver's own error: unreachable server, bad path …
        raise click.ClickException(f"cannot open database {url.split('@')[-1]}: "
                                   f"{' '.join(str(err).split())}") from None
