"""The systemd units and environment file shipped under deploy/ name only what `slm serve`
reads, and start the roles they say."""
from __future__ import annotations

import configparser
import re

from cli.serve import serve
from tests.support import ROOT

DEPLOY = ROOT / "deploy"


def served_variables() -> set[str]:
    return {param.envvar for param in serve.params if isinstance(getattr(param, "envvar", None), str)}


def test_every_variable_of_the_environment_file_is_one_slm_serve_reads():
    names = {line.split("=", 1)[0].lstrip("#") for line in (DEPLOY / "slm.env.example").read_text().splitlines()
             if re.match(r"#?SLM_[A-Z_]+=", line)}
    assert names and names <= served_variables(), names - served_variables()


def test_each_unit_runs_slm_serve_in_its_role_with_variables_it_reads():
    for unit, role in (("slm-api.service", "api"), ("slm-worker.service", "worker")):
        parsed = configparser.ConfigParser(strict=False, interpolation=None)
        parsed.optionxform = str         # keep the keys' case
        parsed.read_string((DEPLOY / unit).read_text())
        service = parsed["Service"]
        assert service["ExecStart"].endswith("slm serve") and service["KillSignal"] == "SIGTERM"
        assigned = dict(pair.split("=", 1) for pair in service["Environment"].split())
        assert assigned["SLM_ROLE"] == role and set(assigned) <= served_variables()
