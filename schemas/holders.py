"""Who a role's holder may be: somewhere a notification can go.

A holder is an e-mail address (sent through the SMTP relay), an http(s) URL (a signed
webhook) or a URL of a scheme Apprise delivers to (``slack://``, ``msteams://``, …): the
three channels of docs/RULES.md, "Who is notified". Anything else (``htp://…``, ``vpn
owner at example``, a bare ``https://``) reaches nobody, so it is an error where it is
written, not a notification that fails months later.
"""
from __future__ import annotations

import difflib
from functools import lru_cache

from marshmallow import ValidationError, validate

WEB = ("http", "https")
_email = validate.Email(error="")
_web = validate.URL(schemes=set(WEB), require_tld=False, error="")


@lru_cache(maxsize=1)
def apprise_schemes() -> frozenset[str]:
    """The URL schemes the installed Apprise delivers to (read once, when first needed)."""
    from apprise.manager_plugins import NotificationManager  # ~0.25 s: only for such a holder
    return frozenset(scheme.lower() for scheme in NotificationManager().schemas())  # type: ignore[no-untyped-call]


def holder_problem(text: str) -> str | None:
    """Why ``text`` is no place a notification can go; None when it is one."""
    if "://" in text:
        scheme = text.partition("://")[0].lower()
        if scheme in WEB:
            return None if _valid(_web, text) else f"{text!r} is not a complete {scheme} URL (a host is needed)"
        if scheme in apprise_schemes():
            import apprise
            return None if apprise.Apprise.instantiate(text, suppress_exceptions=True) is not None else \
                f"{text!r} is no {scheme}:// URL Apprise can send to (see its URL formats for {scheme}://)"
        near = difflib.get_close_matches(scheme, [*WEB, *sorted(apprise_schemes())], n=1, cutoff=0.6)
        hint = f" (did you mean {near[0]}://?)" if near else ""
        return f"{text!r}: {scheme}:// is no scheme a notification can use: http, https or one Apprise " \
               f"delivers to (slack://, mmost://, tgram://, mailto://, …){hint}"
    if _valid(_email, text):
        return None
    return f"{text!r} is neither an e-mail address nor a URL (http, https or an Apprise URL such as slack://…)"


def _valid(validator: validate.Validator, text: str) -> bool:
    try:
        validator(text)
    except ValidationError:
        return False
    return True
