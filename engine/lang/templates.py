"""Message templates, rendered in Jinja2's sandbox: rule files are data, never code."""
from __future__ import annotations

from functools import lru_cache

from jinja2 import TemplateSyntaxError, Undefined
from jinja2.sandbox import SandboxedEnvironment

_ENV = SandboxedEnvironment(undefined=Undefined, autoescape=False)


def template_problem(text: str) -> str | None:
    """Why a template would not compile, or None when it is fine."""
    try:
        _ENV.parse(text)
    except TemplateSyntaxError as err:
        return f"template error on its line {err.lineno}: {err.message}"
    return None


@lru_cache(maxsize=1024)
def _compiled(text: str):
    return _ENV.from_string(text)


def render(text: str, context: dict) -> str:
    """Render a template; a template that fails at run time yields its own text, marked."""
    try:
        return _compiled(text).render(context)
    except Exception as err:  # the sandbox raises SecurityError and others; a message must not stop the engine
        return f"{text} [template error: {err}]"
