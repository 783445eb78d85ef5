"""The web console under ``/ui/``: server-rendered pages for auditors and process owners.

Everything a page loads comes from this blueprint (templates, one stylesheet, one small
script); the Content-Security-Policy forbids anything else, inline scripts and styles
included. Charts are SVG drawn on the server (api/ui/charts.py). Sign-in turns an slm
token into a signed session cookie that holds the token's digest, checked through the
API's own token cache on every request (api/ui/session.py).
"""
from __future__ import annotations

import secrets
from datetime import timedelta

from flask import Blueprint, Flask, redirect, url_for

from engine.store.store import Store

bp = Blueprint("ui", __name__, url_prefix="/ui", template_folder="templates",
               static_folder="static", static_url_path="/static")

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")


@bp.after_request
def _headers(response):
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if response.mimetype == "text/html":
        response.headers["Cache-Control"] = "no-store"
    return response


def register(app: Flask, store: Store) -> None:
    """Mount the console on ``app``: its blueprint, session cookies (signed-out sessions kept
    in ``store``), CSP, ``/`` → console."""
    # F401: imported for what importing does: their routes register on ``bp``
    from . import pages, session  # noqa: F401

    if not app.config.get("SECRET_KEY"):       # per process unless set: a restart signs everyone out
        app.config["SECRET_KEY"] = secrets.token_hex(32)
    app.config.update(SESSION_COOKIE_NAME="slm_session", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_PATH="/ui",
                      PERMANENT_SESSION_LIFETIME=timedelta(hours=8))
    app.session_interface = session.SessionCookies()
    app.extensions[session.ENDED] = session.EndedSessions(store, app.permanent_session_lifetime)
    app.register_blueprint(bp)
    app.add_url_rule("/", "home", lambda: redirect(url_for("ui.overview")))

