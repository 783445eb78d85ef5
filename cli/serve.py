"""``slm serve``: the HTTP service on waitress (Flask is imported here, never by the engine)."""
from __future__ import annotations

import logging
import os
import signal
import sys
from datetime import date

import click

from engine.lang.checks import validity_warnings
from engine.lang.errors import RuleSetError
from engine.service.live import SNAPSHOT_EVERY
from schemas.values import parse_duration

from .common import DEFAULT_DB, DEFAULT_RULES, open_store


@click.command()
@click.option("--rules", "rules_dir", default=DEFAULT_RULES, show_default=True, type=click.Path(file_okay=False),
              help="Rules directory (env SLM_RULES).")
@click.option("--db", "db_url", default=DEFAULT_DB, show_default=True,
              help="sqlite:///path.db or postgresql://user@host/db (env SLM_DATABASE_URL).")
@click.option("--host", default=os.environ.get("SLM_HOST", "127.0.0.1"), show_default=True)
@click.option("--port", default=int(os.environ.get("SLM_PORT", "8080")), show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 256),
              help="Request threads (the engine itself is single-writer).")
@click.option("--skew", default="5m", show_default=True,
              help="How far ahead of the server clock a fact's time may be.")
@click.option("--alert-service-label", default="service", show_default=True,
              help="The Alertmanager label that names the service.")
@click.option("--snapshot-every", default=SNAPSHOT_EVERY, show_default=True, type=click.IntRange(0),
              help="New facts between engine snapshots (a restart replays only what follows the "
                   "newest); 0: never.")
@click.option("--retain", default="35d", show_default=True,
              help="How long a finished clock is kept for late facts before it is forgotten.")
def serve(rules_dir, db_url, host, port, threads, skew, alert_service_label, snapshot_every, retain):
    """Run the API: store facts, fire clocks on time, answer auditors."""
    from waitress import create_server

    from api.app import create_app
    from engine.service.live import SlmService

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    skew_delta, retain_delta = _duration(skew, "--skew"), _duration(retain, "--retain")
    store = open_store(db_url)
    try:
        service = SlmService(store, rules_dir, skew=skew_delta, snapshot_every=snapshot_every,
                             retain=retain_delta, freeze_heap=True)
    except RuleSetError as err:
        click.echo(err.report(), err=True)
        sys.exit(1)
    for warning in validity_warnings(service.ruleset, date.today()):
        click.echo(str(warning), err=True)
    app = create_app(service, alert_service_label=alert_service_label)
    server = create_server(app, host=host, port=port, threads=threads, ident="slm",
                           clear_untrusted_proxy_headers=True)
    service.start(background=True, on_failure=lambda exc: os._exit(3))
    address = f"http://{server.effective_host}:{server.effective_port}"
    click.echo(f"slm serving {address}  (rules {rules_dir}, ruleset {service.ruleset.version[:19]}…, "
               f"db {_redacted(db_url)})")
    click.echo(f"  API docs {address}/docs   OpenAPI {address}/openapi.json   health {address}/readyz")
    click.echo(f"  get a token: slm token create --role admin --db {_redacted(db_url)}")
    signal.signal(signal.SIGTERM, _interrupt)   # what service managers send: stop cleanly
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        service.stop()
        logging.getLogger("slm.serve").info("stopped")


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _duration(text: str, option: str):
    try:
        return parse_duration(text)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint=option) from None


def _redacted(url: str) -> str:
    """A database URL without its password, for printing."""
    from urllib.parse import urlsplit, urlunsplit
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
