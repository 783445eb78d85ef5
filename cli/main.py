"""The ``slm`` command line, every command registered here and nowhere else."""
from __future__ import annotations

import click

from .admin import audit, report
from .docs import docs
from .exports import export_group
from .imports import import_group
from .notify import notify
from .replay import replay
from .restatements import restate, restatement
from .rules import check, explain, lint, test_command
from .serve import serve
from .silences import silence
from .tokens import token
from .waivers import waiver


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """slm: SLA targets, escalations and RACI as rules, evaluated over service facts."""


for command in (serve, check, lint, test_command, explain, docs, replay, report, token, audit, notify,
                import_group, export_group, silence, waiver, restate, restatement):
    main.add_command(command)
