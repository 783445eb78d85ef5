"""Message templates, rendered in Jinja2's sandbox: rule files are data, never code.

The sandbox stops escapes, not cost: ``{{ 3 ** (3 * 10 ** 7) }}`` computes for seconds and
``{{ 'x' * 10 ** 9 }}`` allocates a gigabyte, inside the engine's write lock. So ``**``
and ``*`` are intercepted and refused past :data:`MAX_POWER_BITS` / :data:`MAX_OUTPUT`,
``range`` is capped at :data:`MAX_RANGE`, and a rendering stops at :data:`MAX_OUTPUT`
characters. Templates are compiled when the rules load (``slm check``), so a broken one is
an error at file:line, not a surprise at run time.
"""
from __future__ import annotations

from functools import lru_cache

from jinja2 import TemplateSyntaxError, Undefined
from jinja2.sandbox import SandboxedEnvironment, SecurityError

MAX_OUTPUT = 4096          # characters one rendering (or one string operand) may reach
MAX_POWER_BITS = 4096      # bits the result of ``**`` or ``*`` on integers may reach
MAX_RANGE = 1000


class _BoundedEnvironment(SandboxedEnvironment):
    """The sandbox with ``**`` and ``*`` bounded (Jinja calls :meth:`call_binop` for the
    operators named in ``intercepted_binops``, at run time, whatever the operands)."""

    intercepted_binops = frozenset(["**", "*"])

    def call_binop(self, context, operator, left, right):
        if operator == "**":
            _check_power(left, right)
            return left ** right
        if operator == "*":
            _check_product(left, right)
            return left * right
        return super().call_binop(context, operator, left, right)


def _check_power(left, right) -> None:
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        base = abs(int(left)) if isinstance(left, int) else 0
        if isinstance(right, int) and base > 1 and right > 0 and base.bit_length() * right > MAX_POWER_BITS:
            raise SecurityError(f"** result too large (more than {MAX_POWER_BITS} bits)")
        if isinstance(right, (int, float)) and abs(right) > MAX_POWER_BITS:
            raise SecurityError(f"** exponent {right} is too large")


def _check_product(left, right) -> None:
    for text, count in ((left, right), (right, left)):
        if isinstance(text, (str, list, tuple)) and isinstance(count, int) and len(text) * count > MAX_OUTPUT:
            raise SecurityError(f"* would make {len(text) * count} items; at most {MAX_OUTPUT}")
    if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > MAX_POWER_BITS:
        raise SecurityError(f"* result too large (more than {MAX_POWER_BITS} bits)")


def _range(*args):
    values = range(*args)
    if len(values) > MAX_RANGE:
        raise SecurityError(f"range of {len(values)} items; at most {MAX_RANGE}")
    return values


_ENV = _BoundedEnvironment(undefined=Undefined, autoescape=False)
_ENV.globals["range"] = _range


def template_problem(text: str) -> str | None:
    """Why a template would not compile, or None when it is fine."""
    found = template_error(text)
    return None if found is None else f"template error on its line {found[0]}: {found[1]}"


def template_error(text: str) -> tuple[int, str] | None:
    """(Line within the template, message) of why it would not compile; None if it does."""
    try:
        _ENV.from_string(text)
    except TemplateSyntaxError as err:
        return err.lineno or 1, err.message or str(err)
    return None


@lru_cache(maxsize=1024)
def _compiled(text: str):
    return _ENV.from_string(text)


def render(text: str, context: dict) -> str:
    """Render a template, at most :data:`MAX_OUTPUT` characters (cut, marked); a template
    that fails at run time yields its own text, marked."""
    try:
        parts, size = [], 0
        for part in _compiled(text).generate(context):
            parts.append(part)
            size += len(part)
            if size > MAX_OUTPUT:
                return "".join(parts)[:MAX_OUTPUT] + " [cut: longer than the limit]"
        return "".join(parts)
    except Exception as err:  # the sandbox raises SecurityError and others; a message must not stop the engine
        return f"{text} [template error: {err}]"
