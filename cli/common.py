"""What the commands share: the options every command spells the same way (each with its
environment variable, read by click when the command runs), and opening the store."""
from __future__ import annotations

import click

RULES_ENV, DEFAULT_RULES = "SLM_RULES", "rules"
AUDIT_KEY_HELP = "File holding the key of the audit chains, kept outside the database."


def rules_option(help: str = "Rules directory."):
    """``--rules`` (env SLM_RULES)."""
    return click.option("--rules", "rules_dir", envvar=RULES_ENV, show_envvar=True, default=DEFAULT_RULES,
                        show_default=True, type=click.Path(file_okay=False), help=help)


def partitions_option(help: str = "The partition map (YAML: partitions: {service: partition}, default: …)."):
    """``--partitions`` (env SLM_PARTITIONS): the map of docs/SCALING.md §1; none means the one
    partition ``default``."""
    return click.option("--partitions", "partitions_file", envvar="SLM_PARTITIONS", show_envvar=True,
                        type=click.Path(dir_okay=False), help=help)


def db_option(help: str = "sqlite:///path.db or postgresql://user@host/db."):
    """``--db`` (env SLM_DATABASE_URL), SQLite in the working directory by default."""
    return click.option("--db", "db_url", envvar="SLM_DATABASE_URL", show_envvar=True, default="sqlite:///slm.db",
                        show_default=True, help=help)


def audit_key_option(required: bool = False, help: str = AUDIT_KEY_HELP):
    """``--audit-key-file`` (env SLM_AUDIT_KEY_FILE)."""
    return click.option("--audit-key-file", envvar="SLM_AUDIT_KEY_FILE", show_envvar=True, required=required,
                        help=help)


def audit_key(path: str | None, create: bool = False) -> bytes | None:
    """The audit key in ``path`` (None without a path), or a clean exit saying why not."""
    if not path:
        return None
    from engine.store.chain import AuditKeyError, load_key
    try:
        return load_key(path, create=create)
    except AuditKeyError as err:
        raise click.BadParameter(str(err), param_hint="--audit-key-file") from None


def open_store(url: str, key: bytes | None = None, writer: bool = False, partition: str = "default"):
    """The store at ``url``, or a clean exit naming what is wrong with it. ``writer``: for
    the process that evaluates (``slm serve``); a SQLite file that another process writes
    is refused, naming that process. ``partition``: the one the store writes for."""
    from engine.store.connection import one_line
    from engine.store.store import Store, WriterLockHeld
    try:
        return Store.open(url, audit_key=key, writer=writer, partition=partition)
    except WriterLockHeld as err:
        raise click.ClickException(str(err)) from None
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--db") from None
    except Exception as err:        # the driver's own error: unreachable server, bad path …
        raise click.ClickException(f"cannot open database {url.split('@')[-1]}: {one_line(err)}") from None


def rules_in_force(store):
    """The rule set of the last cut-over a database records (what its server enforces)."""
    from engine.lang.loader import load_texts

    cutovers = store.cutovers()
    if not cutovers:
        raise click.ClickException("the database records no rules in force (the service never started on it)")
    version = cutovers[-1]["ruleset"]
    files = store.ruleset_files(version)
    if files is None:
        raise click.ClickException(f"the rules in force ({version[:19]}…) are not stored in the database")
    return load_texts(files, root=f"version {version[:19]}")
