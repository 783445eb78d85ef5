"""Reading YAML while remembering where every node came from.

PyYAML's safe loader forgets positions and follows YAML 1.1 (``no`` is false, ``12:30``
is a number, dates become objects). Rule files need YAML 1.2-like scalars and
``file:line:column`` for every value, so documents are composed into nodes and built here.

Rule files come from people and from ``POST /v1/rules/check`` alike, so reading one must
be bounded: aliases (``*name``) are refused where they appear — an alias bomb of a few
hundred bytes expands to gigabytes, and ``a: &a [*a]`` is a cycle (go-yaml caps alias
expansion since CVE-2019-11253; rule files have no use for aliases at all) — and nesting
deeper than :data:`MAX_DEPTH` is an error at its line, before the composer's recursion
runs out of stack.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

from engine.lang.errors import Problem

Path = tuple[str | int, ...]       # keys and list indices from the document down to a value


MAX_DEPTH = 64          # mappings and sequences inside each other


class _Loader(yaml.SafeLoader):
    """Safe loader with YAML 1.2 core scalars: only true/false are booleans, no timestamps;
    no aliases, bounded nesting."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int | yaml.Node | None) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            # types-PyYAML leaves Parser.peek_event unannotated
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, f"aliases (*{event.anchor}) are not supported in rule files: write the value out",
                event.start_mark)
        if self._depth >= MAX_DEPTH:
            # types-PyYAML leaves Parser.peek_event unannotated
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
        self._depth += 1
        try:
            # types-PyYAML says int; PyYAML's composer also passes None and a mapping's key node
            return super().compose_node(parent, index)  # type: ignore[arg-type]
        finally:
            self._depth -= 1


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp",
                           "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"),
                              list("-+0123456789."))


def place(mark: yaml.Mark) -> tuple[int, int]:
    r"""(line, column), from 1, as editors count them: lines end at "\n" only, where YAML
    also ends one at a lone "\r", U+0085, U+2028 and U+2029."""
    text, at = mark.buffer, mark.pointer
    if text is None:
        return mark.line + 1, mark.column + 1
    return text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)


@dataclass
class Document:
    """One YAML document: its data and the position of every value and key in it."""

    file: str
    data: object
    line: int
    column: int
    places: dict[Path, tuple[int, int]] = field(default_factory=dict)      # path -> (line, column) of the value
    key_places: dict[Path, tuple[int, int]] = field(default_factory=dict)  # path -> (line, column) of the key

    def place(self, path: Path, key: bool = False) -> tuple[int, int]:
        """The nearest known position for a path (walking up to the document)."""
        table = self.key_places if key else self.places
        path = tuple(path)
        if path in table:
            return table[path]
        while path:
            path = path[:-1]
            if path in self.places:
                return self.places[path]
        return self.line, self.column

    def problem(self, path: Path, message: str, code: str = "invalid", key: bool = False) -> Problem:
        line, column = self.place(path, key)
        return Problem(self.file, line, column, message, code)


def load_documents(text: str, file: str) -> tuple[list[Document], list[Problem]]:
    """Every non-empty document of a YAML stream, or the syntax problem that stopped reading."""
    docs: list[Document] = []
    problems: list[Problem] = []
    try:
        for node in yaml.compose_all(text, Loader=_Loader):
            if node is None:
                continue
            doc = Document(file, None, *place(node.start_mark))
            doc.data = _build(node, (), doc, problems)
            docs.append(doc)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, column = place(mark) if mark else (1, 1)
        problems.append(Problem(file, line, column, f"YAML syntax: {err.problem or err}", "syntax"))
    except yaml.reader.ReaderError as err:         # a character YAML does not allow
        before = text[:err.position]
        line, column = before.count("\n") + 1, err.position - (before.rfind("\n") + 1) + 1
        problems.append(Problem(file, line, column,
                                f"YAML syntax: character {err.character:#06x} is not allowed in YAML", "syntax"))
    return docs, problems


_constructor = _Loader("")


def _build(node: yaml.Node, path: Path, doc: Document, problems: list[Problem]) -> object:
    doc.places[path] = place(node.start_mark)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, object] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                problems.append(_at(doc, key_node, "merge keys (<<) are not supported", "syntax"))
                continue
            key = _build(key_node, path + ("<key>",), doc, problems)
            if not isinstance(key, (str, int)):
                problems.append(_at(doc, key_node, "a key must be a plain name", "syntax"))
                continue
            key = str(key)
            if key in result:
                problems.append(_at(doc, key_node, f"duplicate key '{key}'", "duplicate"))
                continue
            doc.key_places[path + (key,)] = place(key_node.start_mark)
            result[key] = _build(value_node, path + (key,), doc, problems)
        doc.places.pop(path + ("<key>",), None)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (index,), doc, problems) for index, item in enumerate(node.value)]
    try:
        return _constructor.construct_object(node, deep=True)
    except yaml.YAMLError as err:
        problems.append(_at(doc, node, f"cannot read value: {err}", "syntax"))
        return None
    except ValueError:              # an integer longer than Python converts (4,300 digits)
        problems.append(_at(doc, node, f"cannot read value: a number of {len(str(node.value))} digits "
                                       "is no value a rule file can use", "syntax"))
        return None


def _at(doc: Document, node: yaml.Node, message: str, code: str) -> Problem:
    return Problem(doc.file, *place(node.start_mark), message, code)
