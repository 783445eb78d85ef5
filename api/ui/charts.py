"""Charts as SVG drawn here, on the server: no script, nothing fetched, printable.

Each function takes the figures (engine.service.review, engine.service.timeline) and
returns markup with a title for screen readers; every chart sits next to a table with
the same figures. Colours come from classes in console.css (met, breach, warn, …), so
print and screen styles can differ and contrast is set in one place.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from schemas.values import format_whole_duration


def _svg(width: int, height: int, title: str, body: list[str], css: str = "chart") -> Markup:
    return Markup(f'<svg class="{css}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
                  f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>{"".join(body)}</svg>')


def _text(x, y, text, css="label", anchor="start") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" class="{css}" text-anchor="{anchor}">{escape(text)}</text>'


def _rect(x, y, w, h, css, tip=None) -> str:
    inner = f"<title>{escape(tip)}</title>" if tip else ""
    return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" '
            f'class="{css}">{inner}</rect>')


def weekly(weeks: list[tuple[str, int, int]], title: str) -> Markup:
    """Met and breached cycles per week as stacked bars."""
    width, height, left, bottom = 420, 190, 34, 24
    top = max([m + b for _, m, b in weeks] + [1])
    slot = (width - left - 8) / max(len(weeks), 1)
    scale = (height - bottom - 12) / top
    body = [f'<line x1="{left}" y1="{height - bottom}" x2="{width - 4}" y2="{height - bottom}" class="axis"/>',
            _text(left - 4, 14, str(top), anchor="end"), _text(left - 4, height - bottom, "0", anchor="end")]
    for i, (label, met, breached) in enumerate(weeks):
        x = left + i * slot + slot * 0.2
        w = slot * 0.6
        y_met = height - bottom - met * scale
        body.append(_rect(x, y_met, w, met * scale, "met", f"{label}: {met} met"))
        body.append(_rect(x, y_met - breached * scale, w, breached * scale, "breach", f"{label}: {breached} breached"))
        body.append(_text(x + w / 2, height - 6, label, anchor="middle"))
    return _svg(width, height, title, body)


def spread(buckets: tuple[str, ...], counts: list[int], title: str) -> Markup:
    """How long met cycles took, as shares of the goal; the last bar: breached cycles."""
    width, height, left, bottom = 420, 190, 34, 24
    top = max(counts + [1])
    slot = (width - left - 8) / len(buckets)
    scale = (height - bottom - 12) / top
    body = [f'<line x1="{left}" y1="{height - bottom}" x2="{width - 4}" y2="{height - bottom}" class="axis"/>',
            _text(left - 4, 14, str(top), anchor="end"), _text(left - 4, height - bottom, "0", anchor="end")]
    for i, (label, count) in enumerate(zip(buckets, counts, strict=True)):
        x, w = left + i * slot + slot * 0.15, slot * 0.7
        css = "breach" if i == len(buckets) - 1 else "warn" if i == len(buckets) - 2 else "met"
        body.append(_rect(x, height - bottom - count * scale, w, count * scale, css, f"{label} of the goal: {count}"))
        body.append(_text(x + w / 2, height - 6, label, anchor="middle"))
    goal_x = left + (len(buckets) - 1) * slot
    body.append(f'<line x1="{goal_x:.1f}" y1="8" x2="{goal_x:.1f}" y2="{height - bottom}" class="goal"/>')
    body.append(_text(goal_x - 3, 18, "goal", anchor="end"))
    return _svg(width, height, title, body)


def burn(figures: dict, zone: str, title: str) -> Markup:
    """Downtime counted over the month against the window's budget."""
    width, height, left, bottom = 420, 190, 52, 24
    start, end, budget = figures["start"], figures["end"], figures["budget"]
    points = figures["points"]
    top = max([budget] + [c for _, c in points] + [timedelta(minutes=1)]) * 1.15
    span = (end - start).total_seconds()

    def xy(at: datetime, counted: timedelta) -> tuple[float, float]:
        return (left + (at - start).total_seconds() / span * (width - left - 8),
                height - bottom - counted / top * (height - bottom - 10))

    body = [f'<line x1="{left}" y1="{height - bottom}" x2="{width - 4}" y2="{height - bottom}" class="axis"/>']
    _, budget_y = xy(start, budget)
    body.append(f'<line x1="{left}" y1="{budget_y:.1f}" x2="{width - 4}" y2="{budget_y:.1f}" class="goal"/>')
    body.append(_text(left - 4, budget_y + 4, format_whole_duration(budget), anchor="end"))
    body.append(_text(width - 6, budget_y - 4, "budget", anchor="end"))
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(at, c) for at, c in points))
    body.append(f'<polyline points="{line}" class="burn"/>')
    local = ZoneInfo(zone)
    for day in (1, 8, 15, 22, 29):
        at = start.astimezone(local).replace(day=day) if day <= 28 or end.astimezone(local).day != 1 else None
        if at is None or not start <= at < end:
            continue
        x, _ = xy(at, timedelta(0))
        body.append(_text(x, height - 6, at.strftime("%d %b"), anchor="middle"))
    return _svg(width, height, title, body)


CHAR_WIDTH = 7.0        # px per character of an 11 px label: above the console fonts' widest average
LANE = 18               # px between lanes of event labels


def _width(text: str) -> float:
    return CHAR_WIDTH * len(text)


def timeline(tl, title: str) -> Markup:
    """A clock's timeline: closed days, service hours and maintenance taken out of them,
    the spans it ran, and each event. Labels never overlap: an event's label goes in the
    first lane where it fits (as many lanes as needed), flush right at the end of the
    chart; an axis label that would touch the one before or leave the chart is left out.
    Retracted decisions are drawn apart, in lanes of their own below the others, struck
    through."""
    width, left, right = 960, 16, 16
    zone = tl.target.calendar.zone
    span = (tl.end - tl.start).total_seconds() or 1.0

    def x(at: datetime) -> float:
        return left + (at - tl.start).total_seconds() / span * (width - left - right)

    holding = _lanes([e for e in tl.events if not _retracted(e)], x, zone, left, width - right)
    retracted = _lanes([e for e in tl.events if _retracted(e)], x, zone, left, width - right)
    rows = max(holding[1], 1)
    apart = 100 + rows * LANE + 22               # where the retracted decisions' lanes begin
    height = (apart + retracted[1] * LANE) if retracted[1] else 100 + rows * LANE

    body = []
    for day, a, b in tl.closed:
        body.append(_rect(x(a), 22, x(b) - x(a), height - 22, "closed", f"{day:%a %d %b}: closed (holiday)"))
    for a, b in tl.open:
        body.append(_rect(x(a), 30, x(b) - x(a), 18, "hours", "service hours"))
    for a, b, ref in tl.maintenance:
        local = f"{a.astimezone(zone):%a %H:%M}–{b.astimezone(zone):%a %H:%M}"
        body.append(_rect(x(a), 30, x(b) - x(a), 18, "maintenance", f"maintenance {ref} {local}: not counted"))
    for a, b in tl.counting:
        body.append(_rect(x(a), 56, x(b) - x(a), 18, "counting", "the clock counts here outside closed hours"))
    body.append(_text(left, 44, "service hours", css="lane"))
    body.append(_text(left, 70, "clock running", css="lane"))
    if retracted[1]:
        body.append(_text(left, apart - 6, "retracted", css="lane"))
    axis_end = float("-inf")
    for tick, label in _ticks(tl.start, tl.end, zone):
        tx = x(tick)
        body.append(f'<line x1="{tx:.1f}" y1="18" x2="{tx:.1f}" y2="{height - 4}" class="tick"/>')
        if tx + 3 >= axis_end + 8 and tx + 3 + _width(label) <= width - 2:
            body.append(_text(tx + 3, 14, label))
            axis_end = tx + 3 + _width(label)
    events = []
    for placed, top, extra in ((holding[0], 100, ""), (retracted[0], apart + LANE, " superseded")):
        for event, ex, label_x, anchor, lane, text in placed:
            y = top + lane * LANE
            css = event["kind"] if event["kind"] in ("breach", "warning", "met", "escalation", "retracted") \
                else "life"
            css += extra
            body.append(f'<line x1="{ex:.1f}" y1="28" x2="{ex:.1f}" y2="{y - 6}" class="stem {css}"/>')
            events.append(f'<g class="event {css}"><circle cx="{ex:.1f}" cy="{y - 6}" r="4"/>'
                          + _text(label_x, y - 2, text, css="event-label", anchor=anchor)
                          + f"<title>{escape(text)}</title></g>")
    body += events                          # over every stem: a stem never hides a label
    return _svg(width, height, title, body, css="chart timeline")


def _lanes(events: list[dict], x, zone, left: float, limit: float):
    """Each event's label placed in the first lane where it and its marker fit, right of the
    marker or, near the chart's end, left of it: ``(placed, lanes used)``, each placed as
    (event, x, label x, anchor, lane, text)."""
    placed: list[tuple[dict, float, float, str, int, str]] = []
    lanes: list[list[tuple[float, float]]] = []                     # each lane's spans taken
    for event in events:
        ex = x(event["at"])
        text = f"{event['label']} {event['at'].astimezone(zone):%a %H:%M}"
        if ex + 6 + _width(text) <= limit:
            start, anchor = ex + 6, "start"                  # right of its marker
        else:
            start, anchor = max(left, ex - 6 - _width(text)), "end"    # left of it, near the chart's end
        taken = (min(start, ex - 5), max(start + _width(text), ex + 5))     # the label and its marker
        lane = next((n for n, spans in enumerate(lanes)
                     if all(taken[1] + 8 <= a or b + 8 <= taken[0] for a, b in spans)), len(lanes))
        if lane == len(lanes):
            lanes.append([])
        lanes[lane].append(taken)
        placed.append((event, ex, start if anchor == "start" else ex - 6, anchor, lane, text))
    return placed, len(lanes)


def _retracted(event: dict) -> bool:
    """Whether a timeline event is a decision a later one retracted."""
    return bool((event.get("decision") or {}).get("retracted_by"))


def _ticks(start: datetime, end: datetime, zone) -> list[tuple[datetime, str]]:
    """Local midnights (and hours on short spans) to label the axis, at most ~12."""
    span = end - start
    if span <= timedelta(hours=36):
        step, fmt = timedelta(hours=max(1, int(span.total_seconds() // 3600 // 10) or 1)), "%a %H:%M"
        first = start.astimezone(zone).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    else:
        days = max(1, span.days // 10)
        step, fmt = timedelta(days=days), "%a %d %b"
        first = (start.astimezone(zone) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    out: list[tuple[datetime, str]] = []
    at = first
    while at < end and len(out) < 40:
        out.append((at, at.strftime(fmt)))
        at = (at + step).astimezone(zone)
        if step >= timedelta(days=1):
            at = at.replace(hour=0)                 # local midnight across a DST change
    return out


def trend(months: list[tuple[str, float | None]], goal: float | None, title: str) -> Markup:
    """A target's monthly figure (percent) as a line over the months, the goal as a dashed
    line; a month with nothing to read leaves a gap. The scale starts a little under the
    lowest figure, so 99.3 % and 99.9 % are told apart."""
    width, height, left, bottom = 420, 190, 52, 24
    values = [v for _, v in months if v is not None] + ([goal] if goal is not None else [])
    low = min(values + [100.0])
    floor = max(0.0, low - max((100 - low) * 0.25, 0.1))
    slot = (width - left - 8) / max(len(months), 1)

    def y(value: float) -> float:
        return height - bottom - (value - floor) / (100 - floor) * (height - bottom - 12)

    body = [f'<line x1="{left}" y1="{height - bottom}" x2="{width - 4}" y2="{height - bottom}" class="axis"/>',
            _text(left - 4, y(100) + 4, "100 %", anchor="end"),
            _text(left - 4, height - bottom, f"{floor:.4g} %", anchor="end")]
    if goal is not None:
        body.append(f'<line x1="{left}" y1="{y(goal):.1f}" x2="{width - 4}" y2="{y(goal):.1f}" class="goal"/>')
        body.append(_text(width - 6, y(goal) - 3, f"goal {goal:g} %", anchor="end"))
    run: list[str] = []
    for i, (label, value) in enumerate(months):
        x = left + i * slot + slot / 2
        body.append(_text(x, height - 6, label, anchor="middle"))
        if value is None:
            if len(run) > 1:
                body.append(f'<polyline points="{" ".join(run)}" class="burn"/>')
            run = []
            continue
        run.append(f"{x:.1f},{y(value):.1f}")
        css = "breach" if goal is not None and value < goal else "met"
        body.append(f'<circle cx="{x:.1f}" cy="{y(value):.1f}" r="3.5" class="{css}">'
                    f"<title>{escape(label)}: {value:g} %</title></circle>")
    if len(run) > 1:
        body.append(f'<polyline points="{" ".join(run)}" class="burn"/>')
    return _svg(width, height, title, body)


def burn_down(points: list[tuple[datetime, float]], ahead: datetime, projected: datetime | None,
              title: str) -> Markup:
    """An error budget's burn-down: the share of the budget left over the window (each point
    the window ending there), the 100 % and 0 % lines, and from the last point a dashed
    line to where the forecast says the budget runs out, if that is before ``ahead``."""
    width, height, left, bottom = 420, 190, 52, 24
    start, now = points[0][0], points[-1][0]
    end = max(ahead, now + timedelta(seconds=1))
    values = [v for _, v in points]
    low = min(values + [0.0])
    floor = low - max((1 - low) * 0.1, 0.05)
    span = (end - start).total_seconds() or 1.0

    def xy(at: datetime, value: float) -> tuple[float, float]:
        return (left + (at - start).total_seconds() / span * (width - left - 8),
                height - bottom - (value - floor) / (1 - floor) * (height - bottom - 12))

    _, full_y = xy(start, 1.0)
    _, zero_y = xy(start, 0.0)
    body = [f'<line x1="{left}" y1="{height - bottom}" x2="{width - 4}" y2="{height - bottom}" class="axis"/>',
            f'<line x1="{left}" y1="{zero_y:.1f}" x2="{width - 4}" y2="{zero_y:.1f}" class="goal"/>',
            _text(left - 4, full_y + 4, "100 %", anchor="end"), _text(left - 4, zero_y + 4, "0 %", anchor="end"),
            _text(left + 4, zero_y - 4, "budget spent")]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(at, v) for at, v in points))
    body.append(f'<polyline points="{line}" class="burn"/>')
    now_x, now_y = xy(now, values[-1])
    body.append(f'<line x1="{now_x:.1f}" y1="8" x2="{now_x:.1f}" y2="{height - bottom}" class="tick"/>')
    body.append(f'<circle cx="{now_x:.1f}" cy="{now_y:.1f}" r="3.5" class="{"breach" if values[-1] <= 0 else "met"}">'
                f"<title>now: {values[-1]:.0%} of the budget left</title></circle>")
    if projected is not None and now < projected <= end and values[-1] > 0:
        out_x, out_y = xy(projected, 0.0)
        tip = f"at the current burn rate the budget runs out {projected:%Y-%m-%d %H:%M} UTC"
        body.append(f'<line x1="{now_x:.1f}" y1="{now_y:.1f}" x2="{out_x:.1f}" y2="{out_y:.1f}" class="forecast">'
                    f"<title>{escape(tip)}</title></line>")
        body.append(_text(min(out_x, width - 8), out_y + 14, f"runs out {projected:%d %b %H:%M}",
                          anchor="end" if out_x > width - 120 else "middle"))
    body.append(_text(left, height - 6, f"{start:%d %b %H:%M}"))
    body.append(_text(min(now_x, width - 8), height - 6, "now", anchor="end" if now_x > width - 40 else "middle"))
    return _svg(width, height, title, body)
