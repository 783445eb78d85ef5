"""Small rule texts the tests build on: an organisation, a service and its RACI; a desk
with an office calendar and the head of its agreement."""
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

# A desk on an office calendar and the start of its SLA: a test appends its targets.
DESK_AGREEMENT = """\
kind: Calendar
id: office
timezone: Europe/London
hours: {mon-fri: "08:00-18:00"}
---
kind: Service
id: desk
---
kind: Agreement
id: sla-desk
type: SLA
service: desk
targets:
"""

# The web shop and the start of its SLA, for the error-budget tests: a test appends its targets.
SHOP_AGREEMENT = """\
kind: Service
id: shop
---
kind: Agreement
id: sla-shop
type: SLA
service: shop
targets:
"""
