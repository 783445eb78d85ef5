"""Rules and secrets for the delivery tests (tests/notify and tests/e2e): the email
service's service level manager, reached by mail, and optionally a webhook beside it."""
from __future__ import annotations

import shutil

from tests.support import PORTFOLIO

SECRET = "whsec_test-secret-4711"
SLM_MAIL = "slm-mail@example.org"          # the email service's service level manager (PORTFOLIO)


def rules_with(tmp_path, webhook: str | None = None, call: str | None = None):
    """The portfolio, with a webhook as a second service level manager of email and/or
    a ``call`` on the P1 escalation's breach-handling level (a URL, or a write-back written
    as a YAML flow mapping, ``{jira: {…}}``)."""
    rules = tmp_path / "rules"
    shutil.copytree(PORTFOLIO, rules)
    email = rules / "services" / "email.yaml"
    if webhook:
        email.write_text(email.read_text().replace(
            f"service_level_manager: {SLM_MAIL}", f"service_level_manager: [{SLM_MAIL}, {webhook}]"))
    if call:
        escalations = rules / "policies" / "escalations.yaml"
        text = escalations.read_text()
        first = "  - {at: 100%,      activity: breach-handling}"
        value = call if call.startswith("{") else f"'{call}'"
        escalations.write_text(text.replace(first,
                                            f"  - {{at: 100%,      activity: breach-handling, call: {value}}}", 1))
    return rules
