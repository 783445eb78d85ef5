"""``slm explain --mapping NAME FILE.json``: what a payload would become, and why, without
posting it: each fact with how each of its fields was found, whether the intake would take
it (schema and catalogue; the server clock and lateness are the server's to judge), which
clocks it moves (engine.lang.explain), and why each mapped fact not made was not.
"""
from __future__ import annotations

from typing import Any

from engine.lang.catalogue import refusals
from engine.lang.errors import FactError
from engine.lang.explain import explain as explain_fact
from engine.lang.model import RuleSet
from engine.service.validation import load_fact
from engine.webhooks.translate import translate


class UnknownMapping(LookupError):
    """No mapping of that name in the rules."""


def explain_payload(ruleset: RuleSet, name: str, payload: object) -> dict[str, Any]:
    """``{"mapping", "facts": [{fact, made_by, fields, refused, affected, not_affected}], "reasons"}``."""
    mapping = ruleset.mappings.get(name)
    if mapping is None:
        known = ", ".join(sorted(ruleset.mappings)) or "none"
        raise UnknownMapping(f"no mapping {name!r} in the rules (mappings: {known})")
    result = translate(mapping, payload)
    facts = []
    for fact, found in zip(result.facts, result.found, strict=True):
        entry: dict[str, Any] = {"fact": fact, "made_by": f"facts[{found['fact']}]" + (
            f" (item {found['item']})" if found["item"] is not None else ""), "fields": found["fields"]}
        try:
            loaded = load_fact(fact)
            refused = refusals(ruleset, loaded)
        except FactError as err:
            loaded, refused = None, err.details
        entry["refused"] = refused
        if loaded is not None and not refused:
            clocks = explain_fact(ruleset, loaded)
            entry["affected"], entry["not_affected"] = clocks["affected"], clocks["not_affected"]
        facts.append(entry)
    return {"mapping": name, "source": mapping.source, "facts": facts, "reasons": result.reasons}
