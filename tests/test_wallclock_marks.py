"""Every test module that reads this machine's clock is marked ``wallclock``, so that CI
runs it a second time with the clock two years ahead (.ci/run): a test that only passes
near the day it was written is found the day it is written, not the day it starts failing.
"""
from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent

# What reads the real clock in a test module: the clock itself, a real ``slm serve`` or
# ``slm`` command, a service on the real clock (no ``now=``), the delivery worker, token
# expiry.
READS_THE_CLOCK = [
    r"datetime\.now\(",
    r"support\.serving import",
    r"DeliveryWorker\(",
    r"\.token_role\(",
    r"SlmService\((?![^)]*now=)[^)]*\)",
]


def clock_readers(text: str) -> list[str]:
    return [pattern for pattern in READS_THE_CLOCK if re.search(pattern, text)]


def test_every_module_that_reads_the_clock_is_marked_wallclock():
    unmarked = {}
    modules = sorted(TESTS.rglob("test_*.py"))
    assert len(modules) > 40                    # every layer's directory was searched
    for module in modules:
        text = module.read_text()
        if module.name != Path(__file__).name and clock_readers(text) and "pytest.mark.wallclock" not in text:
            unmarked[str(module.relative_to(TESTS))] = clock_readers(text)
    assert unmarked == {}, "mark these modules pytest.mark.wallclock (see .ci/run): " + repr(unmarked)


def test_the_patterns_find_what_they_are_meant_to():
    assert clock_readers("opened = datetime.now(timezone.utc)") == [r"datetime\.now\("]
    assert clock_readers("service = SlmService(store, RULES)")
    assert not clock_readers("service = SlmService(store, RULES, now=wall)")
    assert not clock_readers('fact("f1", time="2026-11-02T09:00:00Z")')
    assert clock_readers("from tests.support.serving import Server, slm")
