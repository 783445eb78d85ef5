"""``slm serve``: the HTTP service on waitress (Flask is imported here, never by the engine)."""
from __future__ import annotations

import logging
import os
import signal
import sys
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import click

from api.throttle import REFUSALS_BEFORE_SLOWING
from engine.lang.checks import validity_warnings
from engine.lang.errors import RuleSetError
from engine.lang.loader import load_rules
from engine.lang.partitions import GLOBAL, PartitionMap, check_against, classify_rules, load_partition_map
from engine.service.live import SNAPSHOT_EVERY
from schemas.limits import MAX_BODY
from schemas.values import parse_duration

from .common import audit_key, audit_key_option, db_option, open_store, partitions_option, rules_option
from .notify import ACK_TTL_HELP, ack_links, channels, delivery_options

MIN_LEASE_TTL = timedelta(seconds=1)     # the owner renews every third of it


@click.command()
@rules_option()
@db_option()
@click.option("--host", envvar="SLM_HOST", show_envvar=True, default="127.0.0.1", show_default=True)
@click.option("--port", envvar="SLM_PORT", show_envvar=True, default=8080, show_default=True,
              type=click.IntRange(0, 65535))
@click.option("--role", envvar="SLM_ROLE", show_envvar=True, default="all", show_default=True,
              type=click.Choice(["all", "api", "worker"]),
              help="all: API and engine in one process. On PostgreSQL, several nodes may share the database: "
                   "api stores facts for the owner to evaluate and answers reads from the database (no engine); "
                   "worker owns the partition (or stands by), evaluates stored facts, fires deadlines and "
                   "delivers, and serves only /healthz, /readyz and /metrics (docs/OPERATIONS.md).")
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 256),
              help="Request threads of the API (the engine itself is single-writer); health and "
                   "metrics have 2 of their own.")
@click.option("--skew", default="5m", show_default=True,
              help="How far ahead of the server clock a fact's time may be.")
@click.option("--max-lateness", envvar="SLM_MAX_LATENESS", show_envvar=True, default="7d", show_default=True,
              help="How far behind the newest event time of its subject a fact may be; a later one is "
                   "refused with 422. 'none': no bound.")
@click.option("--max-body", envvar="SLM_MAX_BODY", show_envvar=True, default=MAX_BODY, show_default=True,
              type=click.IntRange(1024), help="Bytes one request body may have; a larger one is refused with 413.")
@click.option("--slow-after", envvar="SLM_SLOW_AFTER", show_envvar=True, default=REFUSALS_BEFORE_SLOWING,
              show_default=True, type=click.IntRange(0),
              help="Refused fact requests in a row after which a token is slowed: its next requests are "
                   "answered 429 with Retry-After (1s, doubling up to 60s) until one is taken. 0: never.")
@click.option("--alert-service-label", default="service", show_default=True,
              help="The Alertmanager label that names the service.")
@click.option("--snapshot-every", default=SNAPSHOT_EVERY, show_default=True, type=click.IntRange(0),
              help="New facts between engine snapshots (a restart replays only what follows the "
                   "newest); 0: never.")
@click.option("--background-snapshots/--no-background-snapshots", default=True, show_default=True,
              help="Encode the periodic snapshots in a forked process from a copy-on-write image, so "
                   "that no write waits for one; without it, each is encoded under the write lock "
                   "(seconds with tens of thousands of clocks).")
@click.option("--retain", default="35d", show_default=True,
              help="How long a finished clock is kept for late facts before it is forgotten.")
@click.option("--lease-ttl", envvar="SLM_LEASE_TTL", show_envvar=True, default="15s", show_default=True,
              help="PostgreSQL: how long the owner's lease lasts unrenewed (renewed every third of it). "
                   "A second slm serve on the database is a standby and takes over once the owner's "
                   "lease runs out: shorter fails over sooner, longer rides out longer pauses. SQLite "
                   "runs one process and takes no lease.")
@partitions_option(
              help="PostgreSQL: the map of services to partitions (docs/OPERATIONS.md), the same file on every "
                   "node. A worker owns partitions of it (or stands by for them), an API node stores each fact "
                   "for its partition's owner. Without it: one partition, 'default'.")
@click.option("--prefer", envvar="SLM_PREFER", show_envvar=True, default="",
              help="A worker's partitions (comma-separated) that it takes at once; it takes any other only "
                   "once it has had no owner for a third of --lease-ttl. Default: all of them.")
@delivery_options
@click.option("--group-wait", default="30s", show_default=True,
              help="How long a notification waits for others to the same recipient and activity, "
                   "to go out as one message.")
@click.option("--delivery-max-age", default="24h", show_default=True,
              help="How long a notification is retried before it is failed.")
@click.option("--retry-initial", default="2s", show_default=True,
              help="The first retry's delay (doubling, with jitter, up to 10m).")
@click.option("--delivery/--no-delivery", default=True, show_default=True,
              help="Deliver notifications from this process (off: they are only recorded, for "
                   "another process to deliver).")
@click.option("--public-url", envvar="SLM_PUBLIC_URL", show_envvar=True,
              help="This service's address as receivers reach it, for links (default the address served).")
@audit_key_option(help="File holding the key of the audit chains; made, readable by its owner only, if it "
                       "does not exist. Without one the chains are plain SHA-256.")
@click.option("--secret-key", envvar="SLM_SECRET_KEY", show_envvar=True,
              help="Key that signs the console's session cookies (default: made per process, so a restart "
                   "signs everyone out).")
@click.option("--ack-ttl", default="72h", show_default=True, help=ACK_TTL_HELP)
@click.option("--cookie-secure/--no-cookie-secure", envvar="SLM_COOKIE_SECURE", show_envvar=True, default=False,
              help="Mark the console's cookie Secure always (behind a TLS-terminating proxy); without it, "
                   "only requests that came over https get a Secure cookie.")
def serve(rules_dir, db_url, host, port, role, threads, skew, max_lateness, alert_service_label, snapshot_every,
          background_snapshots, retain,
          lease_ttl, partitions_file, prefer, smtp_url, mail_from, webhook_secret, delivery_timeout, group_wait,
          delivery_max_age, retry_initial, delivery, public_url, audit_key_file, max_body, secret_key, ack_ttl,
          cookie_secure, slow_after):
    """Run the API: store facts, fire clocks on time, answer auditors."""
    from api.app import create_app
    from engine.service.live import SlmService
    from engine.service.workers import PartitionWorkers

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    skew_delta, retain_delta = _duration(skew, "--skew"), _duration(retain, "--retain")
    ttl = _duration(lease_ttl, "--lease-ttl")
    if ttl < MIN_LEASE_TTL:
        raise click.BadParameter(f"at least {MIN_LEASE_TTL.total_seconds():g}s: the owner renews every third of it",
                                 param_hint="--lease-ttl")
    lateness = None if max_lateness.strip().lower() in ("none", "off") else _duration(max_lateness, "--max-lateness")
    from engine.notify.record import RetryPolicy
    from engine.notify.worker import DeliveryWorker
    policy = RetryPolicy(initial=_duration(retry_initial, "--retry-initial"),
                         max_age=_duration(delivery_max_age, "--delivery-max-age"))
    config = channels(smtp_url, mail_from, webhook_secret, delivery_timeout,
                      public_url or f"http://{host}:{port}")
    wait = _duration(group_wait, "--group-wait")
    key = audit_key(audit_key_file, create=True)
    if key is None:
        logging.getLogger("slm.serve").warning(
            "no --audit-key-file: the audit chains can be recomputed by anyone who can write the database")
    links = ack_links(secret_key, key, ack_ttl, "slm.serve")
    config = replace(config, ack_links=links)
    if role != "all" and not db_url.startswith(("postgresql:", "postgres:")):
        raise click.BadParameter(f"{role!r} nodes share a PostgreSQL database; SQLite runs one process, "
                                 "--role all", param_hint="--role")
    try:
        ruleset = load_rules(Path(rules_dir))
        pmap = load_partition_map(partitions_file) if partitions_file else PartitionMap.single()
    except RuleSetError as err:
        click.echo(err.report(), err=True)
        sys.exit(1)
    preferred = _preferred(prefer, pmap)
    _check_partitions(pmap, ruleset, role)
    # SQLite: refused while another process writes the file; an API node writes no decisions
    store = open_store(db_url, key, writer=role != "api")
    _agree_on(store, pmap)

    def build(store, hold_back=timedelta(0)):
        delivering = DeliveryWorker(store, config, policy=policy, group_wait=wait) \
            if delivery and role != "api" else None
        return SlmService(store, ruleset, skew=skew_delta, snapshot_every=snapshot_every,
                          retain=retain_delta, freeze_heap=True, delivery=delivering, max_lateness=lateness,
                          lease_ttl=ttl if store.postgres else None,   # PostgreSQL: owner or standby
                          role=role, partitions=pmap, hold_back=hold_back,
                          background_snapshots=background_snapshots)

    workers = None
    if role == "worker" and not pmap.is_single:      # one service per partition, each on a store of its own
        store.close()
        workers = PartitionWorkers.open(pmap, lambda p: open_store(db_url, key, writer=True, partition=p), build,
                                        lease_ttl=ttl, prefer=preferred)
        service = workers.first
    else:
        service = build(store)
    worker = service.delivery
    for warning in validity_warnings(service.state.ruleset, date.today()):
        click.echo(str(warning), err=True)
    app = create_app(service, alert_service_label=alert_service_label, max_body=max_body,
                     secret_key=secret_key, cookie_secure=cookie_secure, workers=workers, slow_after=slow_after,
                     ack_links=links)
    from .lanes import create_server  # /healthz, /readyz, /metrics: a thread pool of their own
    server = create_server(app, host=host, port=port, threads=threads, ident="slm",
                           clear_untrusted_proxy_headers=True)
    if workers is not None:
        workers.start(on_failure=lambda exc: os._exit(3))
    else:
        service.start(background=True, on_failure=lambda exc: os._exit(3))
    address = f"http://{server.effective_host}:{server.effective_port}"
    click.echo(f"slm serving {address} as --role {role}  (rules {rules_dir}, "
               f"ruleset {service.state.ruleset.version[:19]}…, db {_redacted(db_url)})")
    if role == "worker":
        click.echo(f"  no API on a worker: health {address}/readyz   metrics {address}/metrics")
    else:
        click.echo(f"  API docs {address}/docs   OpenAPI {address}/openapi.json   health {address}/readyz")
    if role == "api":
        click.echo("  an API node: facts are stored for the owner (a node with --role all or worker) to evaluate")
    click.echo(f"  get a token: slm token create --role admin --db {_redacted(db_url)}")
    if workers is not None:
        click.echo(f"  owner or standby of partitions {', '.join(pmap.evaluated)} (preferred: "
                   f"{', '.join(sorted(preferred or pmap.evaluated))}): lease {lease_ttl} (see {address}/readyz)")
    elif service.ownership is not None:
        click.echo(f"  owner or standby of this database: lease {lease_ttl}, as {service.ownership.owner} "
                   f"(see {address}/readyz)")
    if role != "api":
        _echo_delivery(worker, config)
    signal.signal(signal.SIGTERM, _interrupt)   # what service managers send: stop cleanly
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        (workers or service).stop()
        logging.getLogger("slm.serve").info("stopped")


def _preferred(prefer: str, pmap: PartitionMap) -> frozenset[str] | None:
    """The partitions named by ``--prefer`` (None: all), each one of the map's."""
    names = frozenset(name.strip() for name in prefer.split(",") if name.strip())
    unknown = sorted(names - set(pmap.evaluated))
    if unknown:
        raise click.BadParameter(f"{', '.join(unknown)}: not a partition of the map (its partitions: "
                                 f"{', '.join(pmap.evaluated)})", param_hint="--prefer")
    return names or None


def _check_partitions(pmap: PartitionMap, ruleset, role: str) -> None:
    """A map must fit the rules (a cross-partition Rule must be one the ``global``
    partition can run), and partitions run only on API nodes and workers (exit 1, naming
    each problem). Says which Rules run in ``global``."""
    problems = check_against(pmap, ruleset)
    if problems:
        click.echo(RuleSetError(problems).report(), err=True)
        sys.exit(1)
    if pmap.is_single:
        return
    if role == "all":
        raise click.BadParameter("with more than one partition, run API nodes (--role api) and workers "
                                 "(--role worker): one process holds no engine for every partition",
                                 param_hint="--role")
    crossing = [c for c in classify_rules(ruleset, pmap).values() if c.scope == GLOBAL]
    if crossing and role != "api":
        click.echo(f"  these Rules join facts across partitions and run in the '{GLOBAL}' partition, on the "
                   "decisions the others feed it (docs/OPERATIONS.md, Partitions by service):")
        for rule in crossing:
            click.echo(f"    {rule.name}: {rule.reason}")


def _agree_on(store, pmap: PartitionMap) -> None:
    """Record the map in the database, or exit if it records another one."""
    from engine.store.store import PartitionMapMismatch
    try:
        store.agree_partition_map(pmap.digest, pmap.canonical)
    except PartitionMapMismatch as err:
        store.close()
        raise click.ClickException(str(err)) from None


def _echo_delivery(worker, config) -> None:
    """Say how notifications leave this process."""
    if worker is None:
        click.echo("  delivery off (--no-delivery): notifications are recorded, not sent")
    elif config.smtp_url:
        click.echo(f"  e-mail through {_redacted(config.smtp_url)}; webhooks "
                   f"{'signed' if config.webhook_secret else 'NOT signed (no --webhook-secret)'}")
    else:
        click.echo("  no SMTP relay (--smtp / SLM_SMTP_URL): e-mail notifications are recorded as "
                   "undeliverable, not sent", err=True)


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
