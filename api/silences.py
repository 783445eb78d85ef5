"""Silences: time-boxed mutes of notifications (engine/notify/silence.py), made and ended
by owners, read by auditors; every one chained in the audit with who made it and why."""
from __future__ import annotations

from flask_smorest import abort

from engine.notify.silence import SilenceError, created_event, expired_event, from_events, new_silence
from schemas.api import SilenceArgs, SilenceInputSchema, SilenceListSchema, SilenceSchema
from schemas.values import parse_duration, parse_instant

from .auth import OWNER, READER, requires, token_name
from .body import BoundedBlueprint
from .context import current_service

blp = BoundedBlueprint("silences", __name__, url_prefix="/v1",
                       description="Silences: notifications muted for a while, by whom and why")


@blp.route("/silences", methods=["POST"])
@requires(blp, OWNER)
@blp.arguments(SilenceInputSchema)
@blp.response(201, SilenceSchema)
def create_silence(body):
    """Mute, from ``starts_at`` (default now) until ``ends_at`` (or for ``duration``), the
    notifications whose decision and recipient all ``matchers`` match: they are stored
    ``muted``, naming this silence, and never sent. Recorded with the token's name."""
    service = current_service()
    now = service.state.now()
    starts = parse_instant(body["starts_at"]) if "starts_at" in body else now
    if ("ends_at" in body) == ("duration" in body):
        abort(422, message="give when it ends: ends_at or duration (not both)",
              errors={"ends_at": ["give ends_at or duration"]})
    try:
        ends = starts + parse_duration(body["duration"]) if "duration" in body else parse_instant(body["ends_at"])
    except OverflowError:
        abort(422, message="this silence would end after the year 9999",
              errors={"ends_at": ["lies after the year 9999"]})
    try:
        silence = new_silence(body["matchers"], starts, ends, token_name() or "unknown", body["reason"], now)
    except SilenceError as err:
        abort(422, message="this silence cannot be made; nothing was stored", errors=err.details)
    service.store.add_silence_event(silence.id, "created", now, created_event(silence))
    return silence.as_dict(now)


@blp.route("/silences", methods=["GET"])
@requires(blp, READER)
@blp.arguments(SilenceArgs, location="query")
@blp.response(200, SilenceListSchema)
def list_silences(args):
    """Every silence, newest first (``state``: only pending, active or expired ones)."""
    service = current_service()
    now = service.state.now()
    items = [s.as_dict(now) for s in reversed(list(from_events(service.store.silence_events()).values()))]
    return {"items": [i for i in items if args.get("state") in (None, i["state"])]}


@blp.route("/silences/<string:silence_id>", methods=["GET"])
@requires(blp, READER)
@blp.response(200, SilenceSchema)
def get_silence(silence_id):
    """One silence."""
    service = current_service()
    found = from_events(service.store.silence_events()).get(silence_id)
    if found is None:
        abort(404, message=f"no silence {silence_id!r}")
    return found.as_dict(service.state.now())


@blp.route("/silences/<string:silence_id>", methods=["DELETE"])
@requires(blp, OWNER)
@blp.response(200, SilenceSchema)
@blp.alt_response(409, description="it has ended already")
def expire_silence(silence_id):
    """End a silence now (recorded with the token's name); what it muted stays muted."""
    service = current_service()
    now = service.state.now()
    with service.store.transaction():
        found = from_events(service.store.silence_events()).get(silence_id)
        if found is None:
            abort(404, message=f"no silence {silence_id!r}")
        if found.state(now) == "expired":
            abort(409, message=f"silence {silence_id} has ended already")
        service.store.add_silence_event(silence_id, "expired", now, expired_event(token_name() or "unknown", now))
    return from_events(service.store.silence_events())[silence_id].as_dict(now)
