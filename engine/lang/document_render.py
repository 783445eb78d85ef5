"""Lay out an agreement document (engine/lang/document.py) as Markdown or HTML.

Both through Jinja2 templates beside this module; HTML is autoescaped, so a customer
name or target name with ``<`` in it is text, never markup. Markdown is plain.
"""
from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined

from engine.lang.document import Document

FORMATS = ("md", "html")


def render(doc: Document, fmt: str = "md") -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (formats: {', '.join(FORMATS)})")
    return _environment(fmt).get_template(f"agreement.{fmt}.j2").render(doc=doc)


def _environment(fmt: str) -> Environment:
    return Environment(loader=PackageLoader("engine.lang", "document_templates"), autoescape=fmt == "html",
                       trim_blocks=True, lstrip_blocks=True, undefined=StrictUndefined,
                       keep_trailing_newline=True)
