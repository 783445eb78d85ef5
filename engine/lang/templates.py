"""Message templates, rendered in Jinja2's sandbox: rule files are data, never code.

The sandbox stops escapes, not cost: ``{{ 3 ** (3 * 10 ** 7) }}`` computes for seconds,
``{{ 'x'.center(10 ** 9) }}`` allocates a gigabyte and three nested loops over a thousand
items turn a thousand million times, inside the engine's write lock. So a rendering is
bounded three ways:

- **steps**: every loop iteration, call, filter, operator and attribute lookup is a step;
  past :data:`MAX_STEPS` (or :data:`MAX_SECONDS` of wall clock, checked at each step) the
  rendering stops with an error;
- **sizes**: no string or list a step makes or reads may exceed :data:`MAX_VALUE` items,
  nor the inputs of a call together (as text: a list of a thousand references to one long
  string counts a thousand times), and every operation that can build a larger value
  than its inputs (``*``, ``**``, ``+``, padding, ``expandtabs``, ``%`` and ``format``,
  ``join``, ``translate``, ``replace``, ``indent``, ``range``, ``slice``) is refused
  before it runs if its result could;
- **output**: a rendering stops at :data:`MAX_OUTPUT` characters (cut, marked).

Templates are compiled when the rules load (``slm check``), so a broken one is an error
at file:line, not a surprise at run time; a failing rendering yields the template's own
text with the reason, never a stopped engine.
"""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from typing import Any, SupportsIndex, TypeVar

from jinja2 import Template, TemplateSyntaxError, Undefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

MAX_OUTPUT = 4096          # characters one rendering may reach
MAX_VALUE = 16 * MAX_OUTPUT    # items a string or list made while rendering may reach
MAX_POWER_BITS = 4096      # bits the result of ``**`` or ``*`` on integers may reach
MAX_RANGE = 1000
MAX_STEPS = 50_000         # loop iterations, calls, operators and lookups in one rendering
MAX_SECONDS = 1.0          # wall clock one rendering may take (a backstop to the steps)

# a width or precision of 100,000 or more, or one taken from the arguments: in %-formats
# ("%0999999d", "%*d") and in str.format fields ("{:>999999}", "{:{w}}")
_WIDE = re.compile(r"%[-#0 +]*(?:\d{6,}|\*|\d*\.(?:\d{6,}|\*))|\{[^{}]*:[^{}]*(?:\d{6,}|\{)")
_PADDING = frozenset(["center", "ljust", "rjust", "zfill", "expandtabs"])


class _Budget(threading.local):
    """The steps and deadline of the rendering running on this thread (None: none is)."""
    steps = 0
    deadline: float | None = None


_BUDGET = _Budget()

_T = TypeVar("_T")


def _step() -> None:
    if _BUDGET.deadline is None:
        return
    _BUDGET.steps += 1
    if _BUDGET.steps > MAX_STEPS:
        raise SecurityError(f"rendering stopped after {MAX_STEPS:,} steps (loops, calls, operators)")
    if not _BUDGET.steps % 256 and time.monotonic() > _BUDGET.deadline:
        raise SecurityError(f"rendering stopped after {MAX_SECONDS:g} s")


def _sized(value: _T) -> _T:
    """``value``, refused if it is a string or list longer than :data:`MAX_VALUE`."""
    if isinstance(value, (str, bytes, list, tuple, dict, set)) and len(value) > MAX_VALUE:
        raise SecurityError(f"a value of {len(value):,} items; at most {MAX_VALUE:,}")
    return value


def _measure(value: object, cap: int = MAX_VALUE) -> int:
    """About how many characters ``value`` is as text (strings and the items of lists,
    tuples, sets and dicts, nested), counted only up to just past ``cap``: a list of a
    thousand references to one long string is long, though it holds one string."""
    if isinstance(value, (str, bytes)):
        return len(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return 24 if not isinstance(value, int) or value.bit_length() < 64 else value.bit_length() // 3 + 1
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        total = 2
        for item in value.items() if isinstance(value, dict) else value:
            total += 2 + _measure(item, cap - total)
            if total > cap:
                break
        return total
    return 64


def _within(size: int, what: str) -> None:
    """Refuse, before it runs, a call whose result would be ``size`` characters or more."""
    if size > MAX_VALUE:
        raise SecurityError(f"{what} would make about {size:,} characters; at most {MAX_VALUE:,}")


def _fields(text: str) -> int:
    """How many values a format string can insert (``{…}`` and ``%…`` fields, at most)."""
    return text.count("{") + text.count("%") + 1


def _check_growth(name: str | None, text: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """The str methods that make a value larger than their inputs, bounded before they run."""
    values = (*args, *kwargs.values())
    if name in _PADDING and name != "expandtabs":
        _check_width(args[0] if args else kwargs.get("width", 0))
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        _check_width(size)
        if isinstance(size, int):
            _within(len(text) + text.count("\t") * max(size - 1, 0), "expandtabs")
    elif name == "replace" and len(args) >= 2:
        _check_replace(text, *args[:3])
    elif name == "join" and args:
        items = args[0]
        count = len(items) if isinstance(items, (list, tuple, set, frozenset, dict, str)) else MAX_VALUE
        _within(_measure(items) + len(text) * max(count - 1, 0), "join")
    elif name in ("format", "format_map"):
        _check_format(text)
        _within(len(text) + _fields(text) * sum(_measure(v) for v in values), name)
    elif name == "translate" and args and isinstance(args[0], dict):
        longest = max((_measure(v) for v in args[0].values()), default=1)
        _within(len(text) * max(longest, 1), "translate")


def _ticking(iterable: Iterable[_T]) -> Iterator[_T]:
    """What a ``for`` loop iterates, one step per item."""
    for item in _sized(iterable) if isinstance(iterable, (list, tuple)) else iterable:
        _step()
        yield item


class _StepCounting(CodeGenerator):
    """Jinja's code generator with every ``for`` loop's iterable passed through
    :func:`_ticking` (as ``environment.ticking``)."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        """``a ~ b`` through ``environment.joining``, which bounds it before it runs."""
        self.visit_Call(nodes.Call(nodes.EnvironmentAttribute("joining"), [nodes.List(node.nodes)], [], None, None,
                                   lineno=node.lineno), frame)

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        counted = nodes.Call(nodes.EnvironmentAttribute("ticking"), [node.iter], [], None, None,
                             lineno=node.lineno)
        node = nodes.For(node.target, counted, node.body, node.else_, node.test, node.recursive,
                         lineno=node.lineno)
        return super().visit_For(node, frame)


class _BoundedEnvironment(SandboxedEnvironment):
    """The sandbox with every call, filter, operator and lookup counted and sized (Jinja
    routes them through these methods in a sandbox; filters are wrapped in
    :func:`_counted_filter`)."""

    code_generator_class = _StepCounting
    intercepted_binops = frozenset(["**", "*", "%", "+", "-", "/", "//"])
    intercepted_unops = frozenset(["-", "+"])
    ticking = staticmethod(_ticking)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _step()
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            _check_product(left, right)
        elif operator == "%" and isinstance(left, str):
            _check_format(left)
            _within(len(left) + _fields(left) * _measure(right), "%")
        elif operator == "+":
            _within(_measure(left) + _measure(right), "+")
        return _sized(super().call_binop(context, operator, left, right))

    def call_unop(self, context: Context, operator: str, arg: Any) -> Any:
        _step()
        return super().call_unop(context, operator, arg)

    # Jinja's signature: positional names with __, so that any keyword argument (self=, obj=)
    # reaches the object called (not self, as pep8-naming would have it)
    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _step()
        for value in (*args, *kwargs.values()):
            _sized(value)
        _within(sum(_measure(v) for v in (*args, *kwargs.values())), "a call")     # its inputs, whole
        if isinstance(getattr(__obj, "__self__", None), str):
            _check_growth(getattr(__obj, "__name__", None), __obj.__self__, args, kwargs)
        return _sized(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        _step()
        found = super().getattr(obj, attribute)
        if isinstance(obj, str) and attribute in ("format", "format_map"):
            _check_format(obj)
            return _growth_checked(attribute, obj, found)    # the sandbox's own wrapper of str.format
        return _sized(found)

    def joining(self, values: list[Any]) -> str:
        """``a ~ b``: each part as text, refused before if together they would be too long."""
        _step()
        _within(sum(_measure(v) for v in values), "~")
        return "".join(map(str, values))

    def getitem(self, obj: Any, argument: Any) -> Any:
        _step()
        return _sized(super().getitem(obj, argument))


def _growth_checked(name: str, text: str, method: Callable[..., Any]) -> Callable[..., Any]:
    def checked(*args: Any, **kwargs: Any) -> Any:
        _check_growth(name, text, args, kwargs)
        return method(*args, **kwargs)
    return checked


def _finalize(value: Any) -> Any:
    """What ``{{ … }}`` writes out: refused before it is turned into text if too long."""
    _within(_measure(value), "writing out a value")
    return value


def _check_power(left: object, right: object) -> None:
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        base = abs(int(left)) if isinstance(left, int) else 0
        if isinstance(right, int) and base > 1 and right > 0 and base.bit_length() * right > MAX_POWER_BITS:
            raise SecurityError(f"** result too large (more than {MAX_POWER_BITS} bits)")
        if isinstance(right, (int, float)) and abs(right) > MAX_POWER_BITS:
            raise SecurityError(f"** exponent {right} is too large")


def _check_product(left: object, right: object) -> None:
    for text, count in ((left, right), (right, left)):
        if isinstance(text, (str, list, tuple)) and isinstance(count, int) and len(text) * count > MAX_OUTPUT:
            raise SecurityError(f"* would make {len(text) * count} items; at most {MAX_OUTPUT}")
    if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > MAX_POWER_BITS:
        raise SecurityError(f"* result too large (more than {MAX_POWER_BITS} bits)")


def _check_width(width: object) -> None:
    if isinstance(width, int) and width > MAX_VALUE:
        raise SecurityError(f"a width of {width:,}; at most {MAX_VALUE:,}")


def _check_format(text: str) -> None:
    if _WIDE.search(text):
        raise SecurityError("a format width or precision of 100,000 or more (or taken from the arguments)")


def _check_replace(text: str, old: object, new: object, count: object = -1) -> None:
    if isinstance(old, str) and isinstance(new, str):
        found = text.count(old) if old else len(text) + 1
        if isinstance(count, int) and count >= 0:
            found = min(found, count)
        if len(text) + found * max(len(new) - len(old), 0) > MAX_VALUE:
            raise SecurityError(f"replace would make more than {MAX_VALUE:,} characters")


def _range(*args: SupportsIndex) -> range:
    values = range(*args)
    if len(values) > MAX_RANGE:
        raise SecurityError(f"range of {len(values)} items; at most {MAX_RANGE}")
    return values


def _counted_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter counted as a step, its arguments and result sized, and the ones that make
    a large value in one go refused before they run."""
    skip = 1 if hasattr(function, "jinja_pass_arg") else 0      # the context or environment Jinja passes first

    def bounded(*args: Any, **kwargs: Any) -> Any:
        _step()
        for value in (*args[skip:], *kwargs.values()):
            _sized(value)
        _within(sum(_measure(v) for v in (*args[skip:], *kwargs.values())), f"the filter {name}")
        value, rest = (args[skip], args[skip + 1:]) if len(args) > skip else (None, ())
        if name == "center":
            _check_width(rest[0] if rest else kwargs.get("width", 80))
        elif name == "indent":
            width = rest[0] if rest else kwargs.get("width", 4)
            _check_width(width)
            lines = str(value).count("\n") + 1
            if isinstance(width, int):
                _within(_measure(value) + lines * width, "indent")
            else:
                _within(_measure(value) + lines * _measure(width), "indent")
        elif name in ("slice", "batch") and rest and isinstance(rest[0], int) and rest[0] > MAX_RANGE:
            raise SecurityError(f"{name} into {rest[0]:,} parts; at most {MAX_RANGE}")
        elif name == "format" and isinstance(value, str):
            _check_format(value)
            _within(len(value) + _fields(value) * sum(_measure(v) for v in (*rest, *kwargs.values())), "format")
        elif name == "replace" and len(rest) >= 2:
            _check_replace(str(value), *rest[:3])
        elif name == "join" and value is not None:
            items = value if isinstance(value, (list, tuple, str)) else list(_ticking(value))
            separator = rest[0] if rest else kwargs.get("d", "")
            _within(_measure(items) + _measure(separator) * len(items), "join")
            args = (*args[:skip], items, *rest)
        return _sized(function(*args, **kwargs))

    if skip:
        # the attribute Jinja's pass_context and pass_environment set on a function
        bounded.jinja_pass_arg = function.jinja_pass_arg  # type: ignore[attr-defined]
    return bounded


_ENV = _BoundedEnvironment(undefined=Undefined, autoescape=False, finalize=_finalize)
_ENV.globals["range"] = _range
del _ENV.globals["lipsum"]                     # lorem ipsum of any length: no use in a message
_ENV.filters = {name: _counted_filter(name, f) for name, f in _ENV.filters.items()}


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
def _compiled(text: str) -> Template:
    return _ENV.from_string(text)


def render(text: str, context: dict[str, Any]) -> str:
    """Render a template within the step, size and time bounds, at most :data:`MAX_OUTPUT`
    characters (cut, marked); a template that fails or runs out of budget yields its own
    text, marked with the reason."""
    outer = _BUDGET.steps, _BUDGET.deadline
    _BUDGET.steps, _BUDGET.deadline = 0, time.monotonic() + MAX_SECONDS
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
    finally:
        _BUDGET.steps, _BUDGET.deadline = outer
