"""The one way a request reaches the service it is answered by."""
from __future__ import annotations

from flask import current_app

from engine.service.live import SlmService

EXTENSION = "slm"       # the key of the service in ``app.extensions`` (api.app.create_app)


def current_service() -> SlmService:
    """The service of the app handling this request."""
    return current_app.extensions[EXTENSION]
