"""Small rule texts the language tests build on: an organisation, a service and its RACI."""
from __future__ import annotations

import textwrap

BASE = textwrap.dedent("""\
    kind: Roles
    id: org-roles
    holders:
      slm_process_owner: owner@example.org
    ---
    kind: Service
    id: email
    roles:
      service_level_manager: slm-mail@example.org
    ---
    kind: Raci
    id: raci
    activities:
      breach-handling: {service_level_manager: R, slm_process_owner: A}
    """)
