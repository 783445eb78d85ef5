"""schemathesis against a real ``slm serve``, with every check, once per role (``make fuzz``).

The server runs the rules given (the shipped ones by default) on a new SQLite database on a
free port; a token is made for each role with ``slm token create``, and ``st run`` tests
every operation of ``/openapi.json`` with it: the examples, coverage (negative data and
undeclared methods included), fuzzing and stateful phases, and every check
(schemathesis.toml; the few refusals no document can state are in tests/support/fuzz_hooks.py).
Any finding fails the run.

    python -m tests.support.fuzz [--examples N] [--role ROLE ...] [--jobs N] [--rules DIR] [--seed N]

``SLM_API_FUZZ_EXAMPLES`` sets the examples per operation of the fuzzing and stateful phases
(default 25); the coverage phase tries every boundary and negation the document names,
about 12,000 cases per role whatever the count. The roles run side by side, as many at
once as there are cores (``--jobs``): some 7 minutes for the four on two cores.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from schemas.values import format_instant
from tests.support import ROOT, RULES
from tests.support.serving import Server, slm

ROLES = ("monitor", "owner", "auditor", "admin")
CONFIG = ROOT / "schemathesis.toml"
# A role that may not post facts is answered 403 there, whatever the body: the coverage
# phase's 10,000 or so bodies of POST /v1/facts would test only that, for minutes.
POSTERS = ("monitor", "admin")
NO_FACT_COVERAGE = '\n[[operations]]\ninclude-operation-id = "post_facts"\nphases.coverage.enabled = false\n'
ST = Path(sys.executable).with_name("st")
DEFAULT_EXAMPLES = 25


@dataclass(frozen=True)
class Outcome:
    """One ``st run``: its exit status, what it printed and its counts."""

    role: str
    returncode: int
    output: str
    cases: int
    failures: int

    @property
    def passed(self) -> bool:
        return self.returncode == 0 and self.failures == 0

    def summary(self) -> str:
        tail = self.output[self.output.rfind("SUMMARY"):] if "SUMMARY" in self.output else self.output[-3000:]
        return f"--- {self.role}: {self.cases} cases, {self.failures} failures (exit {self.returncode})\n{tail}"


class Fuzz:
    """A served rule set with a token per role; :meth:`run` runs schemathesis as one role."""

    def __init__(self, workdir: Path, rules: Path = RULES, *options: str):
        self.workdir = workdir
        self.db_url = f"sqlite:///{workdir / 'fuzz.db'}"
        # --slow-after 0: a fuzzer is refused many times in a row, and a slowed token (429) tests nothing
        self.server = Server(self.db_url, workdir / "serve.log", "--rules", str(rules), "--slow-after", "0",
                             "--audit-key-file", str(workdir / "audit.key"), *options)
        self.tokens: dict[str, str] = {}

    def __enter__(self) -> Fuzz:
        for role in ROLES:               # before the server starts: the store is made by the first
            made = slm("token", "create", "--role", role, "--db", self.db_url)
            if made.returncode:
                raise RuntimeError(f"slm token create --role {role}: {made.stderr}")
            self.tokens[role] = made.stdout.strip().splitlines()[-1]
        self.server.start()
        self.seed()
        return self

    def seed(self) -> None:
        """Facts that leave records behind (decisions, a trace, notifications to retry), so that
        the stateful phase follows the document's links to something: a P1 incident of
        ``email`` opened two days ago (breached by now), a P2 one opened and resolved since."""
        now = datetime.now(UTC)
        facts = [_fact("fuzz-1", "incident.opened", now - timedelta(days=2), "FUZZ-1", priority="P1"),
                 _fact("fuzz-2", "incident.opened", now - timedelta(hours=3), "FUZZ-2", priority="P2"),
                 _fact("fuzz-3", "incident.resolved", now - timedelta(hours=1), "FUZZ-2")]
        posted = requests.post(f"{self.server.base}/v1/facts", json=facts, timeout=60,
                               headers={"Authorization": f"Bearer {self.tokens['monitor']}"})
        if posted.status_code != 200:
            raise RuntimeError(f"seeding facts: {posted.status_code} {posted.text}")

    def __exit__(self, *exc) -> None:
        self.server.stop()

    def run(self, role: str, examples: int, *options: str, seed: int | None = None) -> Outcome:
        report = self.workdir / f"report-{role}.json"
        config = CONFIG
        if role not in POSTERS:
            config = self.workdir / f"schemathesis-{role}.toml"
            config.write_text(CONFIG.read_text() + NO_FACT_COVERAGE)
        command = [str(ST), "--config-file", str(config), "--no-color", "run", f"{self.server.base}/openapi.json",
                   "--checks", "all", "--max-examples", str(examples), "--header",
                   f"Authorization: Bearer {self.tokens[role]}", "--report", "ndjson",
                   "--report-ndjson-path", str(report), *options]
        if seed is not None:
            command += ["--seed", str(seed)]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=3600,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        output = done.stdout + done.stderr
        return Outcome(role, done.returncode, output, *_counts(output))


def _fact(fact_id: str, kind: str, at: datetime, subject: str, **data) -> dict:
    return {"id": fact_id, "source": "fuzz/seed", "type": kind, "time": format_instant(at), "subject": subject,
            "service": "email", "data": data}


def _counts(output: str) -> tuple[int, int]:
    """(test cases, failures) from ``st run``'s summary."""
    generated = re.search(r"(\d+) generated", output)
    failures = re.search(r"(\d+) failures?\b", output)
    return int(generated.group(1)) if generated else 0, int(failures.group(1)) if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int,
                        default=int(os.environ.get("SLM_API_FUZZ_EXAMPLES", DEFAULT_EXAMPLES)))
    parser.add_argument("--role", action="append", choices=ROLES, help="default: every role")
    parser.add_argument("--jobs", type=int, default=min(len(ROLES), os.cpu_count() or 1),
                        help="roles run at once (default: one per core)")
    parser.add_argument("--rules", type=Path, default=RULES)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="work in DIR and keep it: the database, the server's log, st's reports")
    args = parser.parse_args(argv)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="slm-fuzz-") as scratch:
        workdir = args.keep or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        with Fuzz(workdir, args.rules) as fuzz, ThreadPoolExecutor(max(args.jobs, 1)) as pool:
            runs = [pool.submit(fuzz.run, role, args.examples, seed=args.seed) for role in args.role or ROLES]
            for run in runs:
                outcome = run.result()
                print(outcome.output if not outcome.passed else outcome.summary(), flush=True)
                outcomes.append(outcome)
    cases, failures = sum(o.cases for o in outcomes), sum(o.failures for o in outcomes)
    print(json.dumps({"cases": cases, "failures": failures,
                      "roles": {o.role: {"cases": o.cases, "failures": o.failures, "exit": o.returncode}
                                for o in outcomes}}))
    return 0 if all(o.passed for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
