"""The compliance report as CSV (``Accept: text/csv``, ``slm report --format csv``): one
table both give byte for byte, a row per target and month, and for a range of months a
row per target over the whole range (its ``period`` is the range). A window with a waived
period says the down minutes waived, its availability unwaived and the waivers; a restated
month names its restatement and keeps the recorded figures beside the restated ones."""
from __future__ import annotations

import csv
import io

COLUMNS = ("period", "service", "customer", "agreement", "target", "goal", "subjects", "met", "breached",
           "waived", "compliance", "availability", "credit", "waived_minutes", "availability_unwaived", "waivers",
           "restated", "recorded_compliance", "recorded_availability")


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
        lines = [{**fixed, **month, **_waived(month["waived_time"]), **_recorded(month["original"])}
                 for month in row["trend"]]
        if ranged:
            lines.append({**fixed, **{k: row[k] for k in ("subjects", "met", "breached", "waived", "compliance",
                                                           "availability")},
                          "period": report["period"], "credit": None, **_waived(row["waived_time"])})
        for line in lines:
            writer.writerow([_cell(line.get(column)) for column in COLUMNS])
    return out.getvalue()


def _waived(taken: dict | None) -> dict:
    """The columns of what waived periods took out of a window: down minutes, the figure
    unwaived, the waivers' ids (space-separated)."""
    if taken is None:
        return {}
    return {"waived_minutes": taken["down_minutes"], "availability_unwaived": taken["availability_unwaived"],
            "waivers": " ".join(w["id"] for w in taken["waivers"])}


def _recorded(original: dict | None) -> dict:
    """A restated month's figures as recorded (its ``restated`` column names the restatement)."""
    if original is None:
        return {}
    return {"recorded_compliance": original["compliance"], "recorded_availability": original["availability"]}


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
