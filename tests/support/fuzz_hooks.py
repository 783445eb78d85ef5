"""The refusals schemathesis may meet although the API document allows the request.

An OpenAPI 3.0 document cannot state a few of the server's rules: what an instant is once
its offset is applied (``0001-01-01T00:00:00+01:00`` lies before the year 1 in UTC, 400;
a fact's time must lie in 1970..9999 as an instant), what depends on the moment or on what
is stored (a fact at most ``--skew`` ahead of the server clock, at most ``--max-lateness``
behind its subject's newest fact), and what the names of an object's properties may be
(OpenAPI 3.0 has no ``propertyNames``: a rule file's path of 1 to 256 characters, a
silence's matcher names), that a report's range of months runs forwards and spans at most
60 of them, that a waiver's period ends after it starts and its decision is a stored met or
breach, that a restatement's month has been settled (ended a day before the server clock),
that its replay stays within its bounds and its ``rules`` name one stored version put in
force (whose services may differ from those in force), and a silence's end against its
start and the server clock, and that it gives one of ``ends_at`` and ``duration``. And
no schema of YAML text says which rule files make a valid rule set: that verdict is what
``POST /v1/rules/check`` and ``/v1/rules/preview`` answer, 422 with the ``problems``. The
document says each in words; the server answers each with a 4xx naming the field and
the reason. A "schema-valid request rejected" finding (ST202) is dropped here only when
every error of the answer is one of these, by field and reason: anything else the
document allows and the server refuses stays a failure.

One more hook chooses test data, and changes no verdict: a fact's time the document
allows is mostly centuries ahead and refused for the server clock, so the time of each
fact posted is moved into the years 2000 to 2003 (the same day, valid there too) for
the engine to evaluate it.

schemathesis.toml loads this file; tests/support/fuzz.py runs it.
"""
from __future__ import annotations

import re

import schemathesis

from schemas import strings

# (field, as the problem's ``errors`` names it; reason) of each refusal a document cannot state.
UNSTATABLE = [
    (re.compile(r"^(query\.)?(since|until)$|(^|\.)data\.|^(\[\d+\]\.)?time$"),
     re.compile(r"is outside the times that can be held \(years 0001 to 9999 in UTC\)$")),
    (re.compile(r"^(\[\d+\]\.)?time$"),
     re.compile(r"is outside the supported range 1970-01-01T00:00:00Z \.\. 9999-01-01T00:00:00Z$"
                r"|ahead of the server clock; facts may be at most \S+ in the future$"
                r"|behind the newest event time of subject .* \(--max-lateness\)$")),
    (re.compile(r"^json\.files\.\.key$"), re.compile(r"^Length must be between 1 and 256\.$")),
    (re.compile(r"^json\.(since|until)$"),
     re.compile(r"is outside the times that can be held \(years 0001 to 9999 in UTC\)$|^until must come after since$")),
    (re.compile(r"^json\.decision$"),
     re.compile(r"^no decision '.*'$|: only a met or breach decision settles a cycle that compliance counts$")),
    # a restatement: its month settled, its replay within bounds, its rules a stored version
    (re.compile(r"^json\.period$"),
     re.compile(r" is not settled: a month can be restated from \S+ on \(a day after it ends\)$"
                r"|^the period holds more than \d+ facts; give a shorter one$"
                r"|^the replay took more than \S+s; give a shorter period$")),
    (re.compile(r"^json\.rules$"),
     re.compile(r" names no version put in force: give a version of GET /v1/rules/versions$"
                r"| is the start of \d+ versions: give a version of GET /v1/rules/versions$"
                r"| are not stored in the database$")),
    (re.compile(r"^json\.service$"), re.compile(r"^unknown service '.*' in rules \S+ \(services: ")),
    (re.compile(r"^query\.period$"),
     re.compile(r": a range's last month comes before its first$| spans \d+ months; at most \d+$")),
    # a silence: which property names its matchers may have; its end against its start, the
    # server clock and the year 9999; ends_at or duration, one of the two
    (re.compile(r"^json\.matchers\.[^.]*\.key$"), re.compile(r"^not a matcher \(matchers: ")),
    (re.compile(r"^ends_at$"),
     re.compile(r"is not after starts_at|has passed: such a silence would mute nothing$|^give ends_at or duration$"
                r"|^lies after the year 9999$")),
    (re.compile(r"(^|\.)data(\.|$)"),
     re.compile(r"^the property name contains a NUL character|^property names are strings of at most \d+ characters$"
                r"|properties in all \(nested ones included\); at most \d+$|values in all; at most \d+$"
                r"|^nested deeper than \d+ levels$")),
]


def unstatable(errors: dict) -> bool:
    """Whether every error is one the document cannot state."""
    return bool(errors) and all(
        isinstance(messages, list) and messages and all(
            any(field.search(name) and reason.search(str(message)) for field, reason in UNSTATABLE)
            for message in messages)
        for name, messages in errors.items())


VERDICTS = {"/v1/rules/check", "/v1/rules/preview"}     # their 422 "Invalid rule set" is their answer


@schemathesis.hook
def filter_failure(context, failure, case, response) -> bool:
    """Keep every finding but a schema-valid request refused for one of the reasons above."""
    if failure.code != "ST202" or response.status_code not in (400, 422):
        return True
    try:
        body = response.json()
    except ValueError:
        return True
    if not isinstance(body, dict):
        return True
    if case.operation.path in VERDICTS and body.get("title") == "Invalid rule set" and body.get("problems"):
        return False
    return not (isinstance(body.get("errors"), dict) and unstatable(body["errors"]))


FACTS = ("/v1/facts", "POST")


@schemathesis.hook
def map_body(context, body):
    """A posted fact's time, if the document allows it, in 2000 + year % 4 (a 29 February stays one)."""
    operation = context.operation
    if operation is None or (operation.path, operation.method.upper()) != FACTS:
        return body
    for fact in body if isinstance(body, list) else [body]:
        if isinstance(fact, dict) and isinstance(fact.get("time"), str) and fact["time"][:4].isdigit():
            year = int(fact["time"][:4])
            if year >= 2004 and strings.matches(strings.FACT_INSTANT, fact["time"]):
                fact["time"] = f"{2000 + year % 4}{fact['time'][4:]}"
    return body
