"""schemathesis against a real ``slm serve``, every check, a few examples per operation: no
5xx, answers as documented, schema-valid requests taken, the others refused, undeclared
methods 405 with ``Allow``, the links followed (tests/support/fuzz.py). ``make fuzz`` runs
it for every role with more examples (``SLM_API_FUZZ_EXAMPLES``); here the coverage phase
leaves out POST /v1/facts, whose schema per declared fact type takes it minutes."""
from __future__ import annotations

import pytest

from tests.support import PORTFOLIO
from tests.support.fuzz import Fuzz

pytestmark = [pytest.mark.wallclock,    # the server reads this machine's clock: CI runs it again years ahead
              pytest.mark.slow]

EXAMPLES = 3


def test_schemathesis_finds_nothing_as_admin(tmp_path):
    with Fuzz(tmp_path, PORTFOLIO) as fuzz:
        generated = fuzz.run("admin", EXAMPLES, "--phases", "examples,fuzzing,stateful", seed=26)
        covered = fuzz.run("admin", EXAMPLES, "--phases", "coverage", "--exclude-operation-id", "post_facts", seed=26)
    for outcome in (generated, covered):
        assert outcome.passed and outcome.cases > 0, outcome.output
