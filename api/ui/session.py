"""Sign-in, sign-out, who may see which page, and CSRF.

The session (a cookie Flask signs) keeps the SHA-256 digest of the token signed in with,
never the token. Every request asks the API's token cache for the digest's role
(api/auth.TokenCache), so roles are the API's and a revoked or expired token stops working
in the console as soon as it does in the API. Roles per page are the API's tuples
(api/auth). Tokens limited to sources are monitor tokens, which cannot sign in.

Every POST of the console carries the session's CSRF token in a hidden field; a POST
without it, or with another, is refused with 400 before the view runs.

Signing out ends the session on the server too: each session has an id, and the ids of
sessions signed out are kept in the database (engine/store/sessions.py) until their
cookie would have expired, so a copy of the cookie taken before signing out no longer
opens anything, on any process that serves the console, from the very next request, and
after a restart with the same ``--secret-key``. Every request that carries the cookie
asks the database (one primary-key look-up, no cache): :class:`SessionCookies` drops a
signed-out session as it opens it, so no route, the API's included, can sign it again.
"""
from __future__ import annotations

import functools
import hmac
import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from flask import Flask, abort, current_app, g, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface

from engine.clock import utcnow
from engine.store.store import Store, token_digest
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


log = logging.getLogger("slm.api")

ENDED = "slm_ended_sessions"
# Beyond the cookie's lifetime, how long a signed-out session stays refused: for a request
# that was under way at the sign-out (it may sign the cookie once more as it ends) and for
# the clocks of nodes that sign and check cookies and are a little apart.
ENDED_MARGIN = timedelta(hours=1)


class EndedSessions:
    """Sessions signed out, kept in the store until their cookie would have expired anyway
    (the cookie's lifetime plus :data:`ENDED_MARGIN`), so every node refuses them."""

    def __init__(self, store: Store, lifetime: timedelta, wall: Callable[[], datetime] = utcnow):
        self.store, self.lifetime, self.wall = store, lifetime, wall

    def end(self, sid: str) -> None:
        now = self.wall()
        self.store.end_session(sid, now + self.lifetime + ENDED_MARGIN, now)

    def ended(self, sid: str) -> bool:
        return self.store.session_ended(sid)


class SessionCookies(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure when the request came over https, or always
    with ``slm serve --cookie-secure`` (behind a TLS-terminating proxy). X-Forwarded-Proto is
    not honoured: ``slm serve`` has waitress drop untrusted proxy headers.

    A session that was signed out is opened empty, and its cookie deleted: Flask signs a
    permanent session again on every response, so a signed-out one that any route kept
    would get a fresh cookie, still valid once its row is pruned. If the database cannot
    say, the request is served as signed out and the cookie is left as it is."""

    def get_cookie_secure(self, app):
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)

    def open_session(self, app: Flask, request):
        opened = super().open_session(app, request)
        sid = opened.get("sid") if opened else None
        if not isinstance(sid, str):
            return opened
        try:
            ended = app.extensions[ENDED].ended(sid)
        except Exception as error:          # whatever failed, the session is not trusted
            log.warning("could not check whether a console session was signed out: %s", error)
            return self.session_class()
        if not ended:
            return opened
        dropped = self.session_class()
        dropped.modified = True             # the response deletes the cookie
        return dropped


def _role() -> str | None:
    digest = session.get("token")
    if not digest or not session.get("sid"):       # signed-out sessions open empty (SessionCookies)
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
