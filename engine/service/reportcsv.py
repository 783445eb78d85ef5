"""The compliance report as CSV (``Accept: text/csv``, ``slm report --format csv``): one
table both give byte for byte, a row per target and month, and for a range of months a
row per target over the whole range (its ``period`` is the range)."""
from __future__ import annotations

import csv
import io

COLUMNS = ("period", "service", "customer", "agreement", "target", "goal", "subjects", "met", "breached",
           "waived", "compliance", "availability", "credit")


def report_csv(report: dict) -> str:
    """``report`` (engine.service.reports.compliance) as CSV text with a header row; an empty
    cell is a figure with nothing to read (no cycle settled, no window, no credits)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")       # RFC 4180
    writer.writerow(COLUMNS)
    ranged = len(report["months"]) > 1
    for row in report["targets"]:
        fixed = {"service": report["service"], "customer": row["customer"], "agreement": row["agreement"],
                 "target": row["target"], "goal": row["goal"]}
        lines = [{**fixed, **month} for month in row["trend"]]
        if ranged:
            lines.append({**fixed, **{k: row[k] for k in ("subjects", "met", "breached", "waived", "compliance",
                                                           "availability")},
                          "period": report["period"], "credit": None})
        for line in lines:
            writer.writerow([_cell(line.get(column)) for column in COLUMNS])
    return out.getvalue()


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
