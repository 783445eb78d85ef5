"""Running scenario files: facts in, expected and absent decisions/notifications checked.

Expectations compare only the fields they give; instants and durations compare by value
(``09:15:00Z`` equals ``10:15:00+01:00``, ``900s`` equals ``15m``). Each expectation needs
its own matching item, so two alike need two. Every failure names file:line:column.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from marshmallow import ValidationError

from engine.eval.engine import Engine
from engine.lang.catalogue import refusals
from engine.lang.errors import FactError, RuleSetError
from engine.lang.loader import load_rules
from engine.lang.yamlsource import Document, load_documents
from engine.notify.route import notifications_for
from schemas.scenario import ScenarioSchema
from schemas.values import format_instant, parse_duration, parse_instant

DEFAULT_SOURCE = "scenario"


@dataclass
class ScenarioResult:
    file: str
    name: str
    failures: list[str] = field(default_factory=list)
    fired: set = field(default_factory=set)
    rules_root: str = ""

    @property
    def passed(self) -> bool:
        return not self.failures


def find_scenarios(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()))
        else:
            found.append(path)
    return found


class RuleSetCache:
    """Scenarios sharing a rules directory load and check it once."""

    def __init__(self):
        self._sets: dict[Path, object] = {}

    def get(self, root: Path):
        root = root.resolve()
        if root not in self._sets:
            try:
                self._sets[root] = load_rules(root)
            except RuleSetError as err:
                self._sets[root] = err
        return self._sets[root]


def run_file(path: Path, default_rules: Path, cache: RuleSetCache) -> list[ScenarioResult]:
    """Every scenario document in one file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        return [ScenarioResult(str(path), path.name, [f"cannot read: {err}"])]
    docs, problems = load_documents(text, str(path))
    if problems:
        return [ScenarioResult(str(path), path.name, [str(p) for p in problems])]
    return [run_document(path, doc, default_rules, cache) for doc in docs]


def run_document(path: Path, doc: Document, default_rules: Path, cache: RuleSetCache) -> ScenarioResult:
    if not isinstance(doc.data, dict):
        return ScenarioResult(str(path), path.name, [_at(doc, (), "a scenario is a mapping (fields: "
                                                          + ", ".join(sorted(ScenarioSchema().fields)) + ")")])
    try:
        scenario = ScenarioSchema().load(doc.data)
    except ValidationError as err:
        return ScenarioResult(str(path), name_of(doc, path), _placed(doc, err.messages))
    result = ScenarioResult(str(path), scenario["name"])
    root = (path.parent / scenario["rules"]) if scenario.get("rules") else default_rules
    ruleset = cache.get(root)
    result.rules_root = str(root.resolve())
    if isinstance(ruleset, RuleSetError):
        result.failures.append(_at(doc, ("rules",), f"rules at {root} do not load:\n") + ruleset.report())
        return result
    engine = Engine(ruleset)
    rulesets = [ruleset]
    for index, raw in enumerate(scenario["facts"]):
        if isinstance(raw, dict) and "rules" in raw:          # a rule change at an instant
            changed = _rule_change(path, doc, index, raw, cache)
            if isinstance(changed, str):
                result.failures.append(changed)
                return result
            engine.cut_over(*changed)
            rulesets.append(changed[0])
            continue
        fact = {"source": DEFAULT_SOURCE, **raw}
        refused = refusals(engine.ruleset, fact)
        if refused:                 # what the service would refuse with 422 (docs/RULES.md)
            result.failures.append(_at(doc, ("facts", index), f"fact {index + 1} rejected: {FactError(refused)}"))
            return result
        try:
            engine.apply(fact)
        except FactError as err:
            result.failures.append(_at(doc, ("facts", index), f"fact {index + 1} rejected: {err}"))
            return result
    if scenario.get("until"):
        engine.advance(scenario["until"])
    result.fired = set(engine.state.fired_rules)
    actual = observed(engine, engine.ruleset)
    stopped = None if scenario.get("until") or engine.state.now is None else engine.state.now
    for what in ("decisions", "notifications"):
        missing = _missing_ones(doc, what, scenario["expect"][what], actual[what])
        if missing and stopped is not None:
            missing = [text + f"\n      (no `until`: time stopped at the last fact, {format_instant(stopped)};"
                       " a deadline after it is not decided)" for text in missing]
        result.failures += missing
        for index, unwanted in enumerate(scenario["absent"][what]):
            for item in actual[what]:
                if matches(unwanted, item):
                    result.failures.append(_at(doc, ("absent", what, index), f"unexpected {what[:-1]}: "
                                               f"{_show(unwanted)}\n      found: {_show(item)}"))
    return result


def _rule_change(path: Path, doc: Document, index: int, raw: dict, cache: RuleSetCache):
    """``{rules: PATH, at: TIME}`` in a scenario's facts: the rules at PATH (relative to the
    scenario file) put in force at TIME. (ruleset, instant), or the failure to report."""
    extra = sorted(set(raw) - {"rules", "at"})
    if extra or "at" not in raw or not isinstance(raw["rules"], str):
        return _at(doc, ("facts", index), "a rule change is {rules: PATH, at: TIME}"
                   + (f"; unknown field {extra[0]!r}" if extra else ""))
    try:
        at = parse_instant(raw["at"])
    except (TypeError, ValueError) as err:
        return _at(doc, ("facts", index, "at"), f"at: {err}")
    changed = cache.get(path.parent / raw["rules"])
    if isinstance(changed, RuleSetError):
        return _at(doc, ("facts", index, "rules"), f"rules at {raw['rules']} do not load:\n") + changed.report()
    return changed, at


def observed(engine: Engine, ruleset) -> dict[str, list[dict]]:
    """What a run produced, as records: the engine's decisions and the notifications the
    notify stage derives from them (as the service does). The one place that reads the
    engine's output."""
    decisions = engine.decisions
    return {"decisions": [d.as_dict() for d in decisions],
            "notifications": [n.as_dict() for d in decisions for n in notifications_for(d, ruleset)]}


def name_of(doc: Document, path: Path) -> str:
    """The scenario's name, or the file's when it has none."""
    name = doc.data.get("name") if isinstance(doc.data, dict) else None
    return str(name) if isinstance(name, (str, int, float)) and str(name) else path.name


def _missing_ones(doc: Document, what: str, expected: list[dict], actual: list[dict]) -> list[str]:
    """Failures for expectations left without an item of their own. Greedy, the expectations
    giving most fields first, so a general one does not take the item a specific one needs."""
    taken: set[int] = set()
    failures = []
    for index in sorted(range(len(expected)), key=lambda i: -len(expected[i])):
        found = next((j for j, item in enumerate(actual) if j not in taken and matches(expected[index], item)), None)
        if found is not None:
            taken.add(found)
        else:
            failures.append((index, _at(doc, ("expect", what, index), _missing(what, expected[index], actual))))
    return [text for _, text in sorted(failures)]


def matches(expected, actual) -> bool:
    """Do the fields given in ``expected`` all equal those in ``actual``?"""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and matches(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and \
            all(matches(e, a) for e, a in zip(expected, actual, strict=True))
    if expected == actual:
        return True
    if isinstance(expected, (str, int, float)) and isinstance(actual, (str, int, float)):
        if str(expected) == str(actual):
            return True
        for parse in (parse_instant, parse_duration):
            try:
                return parse(expected) == parse(actual)
            except (ValueError, TypeError):
                continue
    return False


def _missing(what: str, expected: dict, actual: list[dict]) -> str:
    def score(item):
        return sum(1 for k, v in expected.items() if k in item and matches(v, item[k]))
    closest = max(actual, key=score, default=None)
    text = f"missing {what[:-1]}: {_show(expected)}"
    alike = sum(1 for item in actual if matches(expected, item))
    if alike:
        text += f"\n      found {alike} like it, already matched by other expectations (each needs its own)"
    elif closest is not None and score(closest):
        diffs = [f"{k}: expected {expected[k]!r}, got {closest.get(k)!r}" for k in expected
                 if not (k in closest and matches(expected[k], closest[k]))]
        text += f"\n      closest: {_show({k: closest.get(k) for k in expected})}\n      differs in " + "; ".join(diffs)
    else:
        text += f"\n      (no {what} of that kind; got {len(actual)} {what} in all)"
    return text


def _at(doc: Document, path: tuple, message: str) -> str:
    line, column = _place(doc, path)
    return f"{doc.file}:{line}:{column}: {message}"


def _place(doc: Document, path: tuple) -> tuple[int, int]:
    """The key's position when the path ends in a key (an unknown field points at itself), else the value's."""
    return doc.place(path, key=path in doc.key_places)


def _placed(doc: Document, messages) -> list[str]:
    """marshmallow's errors (nested by the document's keys), each at its node, in file order."""
    def walk(messages, path):
        if isinstance(messages, dict):
            for key, sub in messages.items():
                yield from walk(sub, path if key == "_schema" else path + (key,))
            return
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
        for message in map(str, messages):
            if where and not message.startswith("unknown field"):
                message = f"{where}: {message}"
            yield _place(doc, path), _at(doc, path, message)
    return [text for _, text in sorted(walk(messages, ()))]


def _show(item: dict) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in item.items() if k not in ("rule", "because")) + "}"


__all__ = ["run_file", "find_scenarios", "name_of", "observed", "RuleSetCache", "ScenarioResult", "matches"]
