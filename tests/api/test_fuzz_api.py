"""Fuzz the API from its own OpenAPI document (schemathesis): no input may cause a 5xx, and
every answer has a documented status, content type and body schema.

Bounded for the quick suite; ``make fuzz`` runs the same test with many more examples
(``SLM_FUZZ_EXAMPLES``).
"""
from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import PORTFOLIO

pytestmark = [pytest.mark.wallclock,    # reads this machine's clock: CI runs it again years ahead
              pytest.mark.slow]

EXAMPLES = int(os.environ.get("SLM_FUZZ_EXAMPLES", "12"))


@pytest.fixture
def served(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'fuzz.db'}")
    service = SlmService(store, PORTFOLIO)
    service.start(background=False)
    app = create_app(service)
    yield app, {"Authorization": f"Bearer {store.add_token('admin')}"}
    service.stop()
    store.close()


@pytest.fixture
def api_schema(served):
    return schemathesis.openapi.from_wsgi("/openapi.json", served[0])


@pytest.fixture
def admin(served):
    return served[1]


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_no_input_causes_a_server_error(case, admin):
    case.call_and_validate(headers=admin, checks=[not_a_server_error])


@schema.parametrize()
@settings(max_examples=max(EXAMPLES // 2, 3), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_status_codes_and_bodies_are_the_documented_ones(case, admin):
    """Every answer has a status the OpenAPI document lists for its operation (or its
    ``default``), and a body of the documented schema and content type."""
    case.call_and_validate(headers=admin, checks=[not_a_server_error, status_code_conformance,
                                                  response_schema_conformance, content_type_conformance])
