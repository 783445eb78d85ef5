"""Sign-in, sign-out, who may see which page, and CSRF.

The session (a cookie Flask signs) keeps the SHA-256 digest of the token signed in with,
never the token. Every request asks the API's token cache for the digest's role
(api/auth.TokenCache), so roles are the API's and a revoked or expired token stops working
in the console as soon as it does in the API. Roles per page are the API's tuples
(api/auth). Tokens limited to sources are monitor tokens, which cannot sign in.

Every POST of the console carries the session's CSRF token in a hidden field; a POST
without it, or with another, is refused with 400 before the view runs.

Signing out ends the session on the server too: each session has an id, and the ids of
sessions signed out are kept (:class:`EndedSessions`) until their cookie would have
expired, so a copy of the cookie taken before signing out no longer opens anything. The
list is kept by the process that serves: another process serving the same console, or
this one restarted with the same ``--secret-key``, does not know it.
"""
from __future__ import annotations

import functools
import hmac
import secrets
import threading
import time

from flask import abort, current_app, g, redirect, render_template, request, session, url_for

from engine.store.store import token_digest
from schemas.values import format_instant

from ..auth import READER
from . import bp

CSRF_FIELD = "csrf"


def csrf_token() -> str:
    """The session's CSRF token (made on first use), for hidden form fields."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


@bp.app_context_processor
def _template_helpers():
    return {"csrf_token": csrf_token, "csrf_field": CSRF_FIELD}


@bp.before_request
def _check_csrf():
    if request.method == "POST":
        sent, expected = request.form.get(CSRF_FIELD, ""), session.get("csrf", "")
        if not expected or not hmac.compare_digest(sent, expected):
            abort(400, description="the form's CSRF token is missing or stale: reload the page and try again")


ENDED = "slm_ended_sessions"
ENDED_SIZE = 100_000            # signed-out sessions remembered at most (the oldest go first)


class EndedSessions:
    """Ids of sessions signed out, each until its cookie would have expired anyway."""

    def __init__(self, lifetime: float, size: int = ENDED_SIZE, clock=time.monotonic):
        self.lifetime, self.size, self.clock = lifetime, size, clock
        self._ended: dict[str, float] = {}          # id -> forgotten after (by ``clock``)
        self._lock = threading.Lock()

    def end(self, sid: str) -> None:
        now = self.clock()
        with self._lock:
            while self._ended and (len(self._ended) >= self.size or next(iter(self._ended.values())) < now):
                del self._ended[next(iter(self._ended))]
            self._ended[sid] = now + self.lifetime

    def ended(self, sid: str) -> bool:
        with self._lock:
            return sid in self._ended


def _role() -> str | None:
    digest, sid = session.get("token"), session.get("sid")
    if not digest or not sid or current_app.extensions[ENDED].ended(sid):
        return None
    role = current_app.extensions["slm_tokens"].role_of_digest(digest)
    if role is None:
        session.pop("token", None)      # revoked: the session ends with it
    return role


def page(roles: tuple[str, ...] = READER):
    """Decorate a console view: no valid session → the sign-in page (then back); a role
    not in ``roles`` → 403, as the API answers."""

    def decorate(view):
        @functools.wraps(view)
        def guarded(*args, **kwargs):
            role = _role()
            if role is None:
                return redirect(url_for("ui.login", next=request.full_path.rstrip("?")))
            if role not in roles:
                abort(403, description=f"role {role!r} may not do this; allowed: {', '.join(roles)}")
            g.role = role
            return view(*args, **kwargs)
        return guarded

    return decorate


@bp.route("/login", methods=["GET", "POST"])
def login():
    error, status = None, 200
    if request.method == "POST":
        token = request.form.get("token", "").strip()
        tokens = current_app.extensions["slm_tokens"]
        grant = tokens.grant(token) if token else None
        if grant is None:
            error, status = "That token is not valid (or was revoked).", 401
        elif grant.expired(tokens.wall()):
            error, status = f"That token expired at {format_instant(grant.expires_at)}.", 401
        elif grant.role not in READER:
            error, status = f"A {grant.role} token cannot use the console (roles: {', '.join(READER)}).", 403
        else:
            csrf = secrets.token_urlsafe(32)       # a fresh session: nothing from before signing in
            session.clear()
            session.update(token=token_digest(token), csrf=csrf, sid=secrets.token_urlsafe(24))
            session.permanent = True
            return redirect(_safe_next(request.form.get("next")))
    return render_template("ui/login.html", error=error, next=request.values.get("next", "")), status


@bp.route("/logout", methods=["POST"])
def logout():
    if session.get("sid"):
        current_app.extensions[ENDED].end(session["sid"])
    session.clear()
    return redirect(url_for("ui.login"))


def _safe_next(target: str | None) -> str:
    """Only paths of the console: a sign-in link cannot send anyone elsewhere."""
    if target and target.startswith("/ui/") and not target.startswith("//"):
        return target
    return url_for("ui.overview")


@bp.errorhandler(400)
@bp.errorhandler(403)
@bp.errorhandler(404)
def _error_page(err):
    """The console's own errors as pages (the API keeps its problem details)."""
    return render_template("ui/error.html", status=err.code, message=err.description), err.code
