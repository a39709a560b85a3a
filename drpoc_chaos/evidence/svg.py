"""Inline SVG charts drawn in Python: no JavaScript, no external asset, readable printed in black and white.

``timeline_svg`` draws one drill: state lanes (tunnel on each gateway, replica IO and SQL threads), heartbeat lag
and Seconds_Behind_Source, rows on source vs replica, and vertical markers for the drill's events.
``trend_svg`` draws detection / recovery / catch-up times across drills against their objectives.

The review puts these strings in its page as they are (report._svg, the only Markup there): every string taken from a
journal (run id, scenario, site and gateway names, state values, event names and labels) goes through ``escape``
here, and every number and time is written by this module or core.fmt.
"""
from __future__ import annotations

import math
from html import escape
from typing import Any, Iterable, Sequence

from ..core import fmt
from .history import TREND_LABELS, TREND_METRICS, TrendPoint
from .model import DrillRecord

__all__ = ["timeline_svg", "trend_svg", "downsample", "STATE_COLOURS", "MAX_CHART_POINTS"]

# A chart is 794 px wide: more points than this per chart add bytes, not information. Long drills are downsampled
# for the page only (the journal keeps every sample): every state change is kept, and per time bucket the samples
# holding each numeric series' minimum and maximum, so peaks (lag spikes) and NULL gaps survive.
MAX_CHART_POINTS = 400
NUMERIC_SERIES = ("heartbeat_lag", "seconds_behind", "source_rows", "replica_rows")

STATE_COLOURS = {
    "up": "#2e7d32", "yes": "#2e7d32",
    "down": "#c62828", "no": "#c62828",
    "connecting": "#f0a30a",
    "unknown": "#9e9e9e", "null": "#9e9e9e",
}
OTHER_STATE = "#7b1fa2"
MARKER_EVENTS = ("fault_injected", "outage_detected", "recovery_started", "tunnel_up", "io_reconnected", "caught_up",
                 # the site failover drill's milestones
                 "site_lost_detected", "promoted", "first_write_new", "fenced", "errant_found", "reseeded",
                 "repointed", "switched_back")
MARKER_COLOURS = {"fault_injected": "#c62828", "outage_detected": "#e65100", "recovery_started": "#1565c0",
                  "tunnel_up": "#2e7d32", "io_reconnected": "#00838f", "caught_up": "#4a148c",
                  "site_lost_detected": "#e65100", "promoted": "#6a1b9a", "first_write_new": "#2e7d32",
                  "fenced": "#37474f", "errant_found": "#c62828", "reseeded": "#1565c0", "repointed": "#1565c0",
                  "switched_back": "#2e7d32"}
SERIES_COLOURS = {"detection_seconds": "#e65100", "rto_seconds": "#1565c0", "catch_up_seconds": "#4a148c"}


def _f(x: float) -> str:
    """Compact coordinate."""
    return f"{x:.1f}".rstrip("0").rstrip(".") if abs(x) < 1e6 else f"{x:.0f}"


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)) and math.isfinite(v):
        return float(v)
    return None


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    exp = math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if m * 10 ** exp >= v:
            return m * 10 ** exp
    return 10 ** (exp + 1)


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / n
    exp = math.floor(math.log10(raw))
    step = min((m * 10 ** exp for m in (1, 2, 2.5, 5, 10) if m * 10 ** exp >= raw), default=raw)
    start = math.ceil(lo / step) * step
    out = []
    v = start
    while v <= hi + step * 1e-9:
        out.append(round(v, 10))
        v += step
    return out


def _fmt_tick(v: float) -> str:
    """An axis label: short (1e+05 rather than 100000), unlike a value shown as a fact (core.fmt)."""
    return f"{v:g}" if abs(v) < 1e5 else f"{v:.3g}"


def _state_key(value: Any) -> str:
    if value is None:
        return "null"
    return str(value).strip().lower() or "null"


def _runs(samples: Sequence[dict[str, Any]], key: str, t_end: float) -> list[tuple[float, float, Any]]:
    """Run-length encode one state field: [(t_start, t_end, value)]."""
    out: list[tuple[float, float, Any]] = []
    for i, s in enumerate(samples):
        t0 = s["t"]
        t1 = samples[i + 1]["t"] if i + 1 < len(samples) else t_end
        v = s.get(key)
        if out and _state_key(out[-1][2]) == _state_key(v) and abs(out[-1][1] - t0) < 1e-9:
            out[-1] = (out[-1][0], t1, out[-1][2])
        else:
            out.append((t0, t1, v))
    return out


def _polyline_path(points: Iterable[tuple[float, float | None]], sx, sy) -> str:
    """An SVG path; a None value breaks the line (NULL Seconds_Behind_Source)."""
    parts: list[str] = []
    pen_up = True
    for t, v in points:
        if v is None:
            pen_up = True
            continue
        parts.append(("M" if pen_up else "L") + f"{_f(sx(t))} {_f(sy(v))}")
        pen_up = False
    return " ".join(parts)


def downsample(samples: Sequence[dict[str, Any]], max_points: int = MAX_CHART_POINTS,
               numeric: Sequence[str] = NUMERIC_SERIES) -> list[dict[str, Any]]:
    """At most about ``max_points`` samples (more only when there are more state changes than that) that draw the
    same chart: the first and last sample, every sample where a state field (any non-numeric value, or a numeric
    series turning NULL or back) changes and the one before it, and per time bucket the samples holding the
    minimum and the maximum of each numeric series."""
    n = len(samples)
    if n <= max_points:
        return list(samples)
    keep = {0, n - 1}
    state_keys = sorted({k for smp in samples for k, v in smp.items()
                         if k != "t" and k not in numeric and not isinstance(v, (int, float))})
    prev = None
    for i, smp in enumerate(samples):
        sig = (tuple(_state_key(smp.get(k)) for k in state_keys), tuple(_num(smp.get(k)) is None for k in numeric))
        if sig != prev:
            keep.add(i)
            if i:
                keep.add(i - 1)
            prev = sig
    present = [k for k in numeric if any(_num(smp.get(k)) is not None for smp in samples[:: max(1, n // 50)])]
    buckets = max(1, max_points // (2 * max(1, len(present))))
    t0, t1 = samples[0]["t"], samples[-1]["t"]
    span = (t1 - t0) or 1.0
    best: dict[tuple[int, str], list[int]] = {}
    values: dict[tuple[int, str], list[float]] = {}  # the min and max seen in each bucket, beside their indexes
    for i, smp in enumerate(samples):
        b = min(buckets - 1, int((smp["t"] - t0) / span * buckets))
        for k in present:
            v = _num(smp.get(k))
            if v is None:
                continue
            slot = best.get((b, k))
            if slot is None:
                best[(b, k)] = [i, i]
                values[(b, k)] = [v, v]
            else:
                low, high = values[(b, k)]
                if v < low:
                    slot[0], values[(b, k)][0] = i, v
                if v > high:
                    slot[1], values[(b, k)][1] = i, v
    for lo, hi in best.values():
        keep.add(lo)
        keep.add(hi)
    return [samples[i] for i in sorted(keep)]


def _lane_fields(rec: DrillRecord) -> list[tuple[str, str]]:
    """[(sample key, label)] for the state lanes."""
    keys: list[str] = []
    for site in rec.scope.gateways or {}:
        keys.append(f"{site}_tunnel")
    for s in rec.timeline[:5]:
        for k in s:
            if k.endswith("_tunnel") and k not in keys:
                keys.append(k)
    lanes = []
    for k in keys:
        site = k[: -len("_tunnel")]
        gw = rec.scope.gateways.get(site)
        # the host name only: "aws-vpn 127.0.0.1:2201" does not fit the lane label column
        lanes.append((k, f"{site} tunnel" + (f" ({gw.split()[0]})" if gw else "")))
    lanes += [("io", "replica IO thread"), ("sql", "replica SQL thread")]
    return lanes


def timeline_svg(rec: DrillRecord, width: int = 960) -> str:
    """The drill's timeline as an inline ``<svg>``; an explanatory ``<p>`` when the journal has no samples."""
    if not rec.timeline:
        return '<p class="nochart">No timeline samples in this journal: no chart.</p>'
    full = rec.timeline
    interval = rec.interval_seconds or (full[1]["t"] - full[0]["t"] if len(full) > 1 else 1.0)
    samples = downsample(full)
    t_min = min(0.0, samples[0]["t"])
    t_end = samples[-1]["t"] + max(interval, 0.0)
    events = [e for e in rec.events if e.name in MARKER_EVENTS and e.t is not None]
    t_max = max([t_end] + [e.t for e in events if e.t is not None])
    if t_max <= t_min:
        t_max = t_min + 1.0
    left, right = 150, 16
    plot_w = width - left - right
    label_rows = 4
    top = 8 + label_rows * 14
    lane_h, lane_gap = 18, 5
    lanes = _lane_fields(rec)
    lanes_top = top
    lanes_bottom = lanes_top + len(lanes) * (lane_h + lane_gap)
    panel_h = 100
    lag_top = lanes_bottom + 14
    rows_top = lag_top + panel_h + 22
    axis_y = rows_top + panel_h
    legend_y = axis_y + 52
    height = legend_y + 16

    def sx(t: float) -> float:
        return left + (t - t_min) / (t_max - t_min) * plot_w

    out: list[str] = []
    title = f"Timeline of drill {rec.run_id} ({rec.scenario})"
    out.append(f'<svg class="timeline" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
               f'width="{width}" height="{height}" font-family="sans-serif" font-size="11">')
    out.append(f"<title>{escape(title)}</title>")
    # Lanes.
    for i, (key, label) in enumerate(lanes):
        y = lanes_top + i * (lane_h + lane_gap)
        out.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">{escape(label)}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{_f(plot_w)}" height="{lane_h}" fill="#f3f3f3"/>')
        for t0, t1, v in _runs(samples, key, t_end):
            x0, x1 = sx(t0), sx(t1)
            colour = STATE_COLOURS.get(_state_key(v), OTHER_STATE)
            text = "n/a" if v is None else str(v)
            out.append(f'<rect class="state" x="{_f(x0)}" y="{y}" width="{_f(max(x1 - x0, 0.5))}" '
                       f'height="{lane_h}" fill="{colour}"><title>{escape(label)}: {escape(text)} '
                       f'from t={fmt.num(t0)}s to t={fmt.num(t1)}s</title></rect>')
            if x1 - x0 > 7 * len(text) + 6:
                out.append(f'<text x="{_f((x0 + x1) / 2)}" y="{y + 13}" text-anchor="middle" fill="#fff">'
                           f"{escape(text)}</text>")

    def panel(top_y: float, series: list[tuple[str, str, str, str]], ylabel: str, zero_floor: bool) -> None:
        values = [v for v in (_num(s.get(k)) for s in samples for k, *_ in series) if v is not None]
        if not values:
            out.append(f'<text x="{left + 6}" y="{top_y + panel_h / 2}" fill="#666">no {escape(ylabel)} '
                       f"data</text>")
            return
        lo = 0.0 if zero_floor else min(values)
        hi = max(values)
        if not zero_floor:
            pad = max((hi - lo) * 0.08, 1.0)
            lo, hi = max(0.0, lo - pad), hi + pad
        hi = _nice_max(hi) if zero_floor else hi
        if hi <= lo:
            hi = lo + 1.0

        def sy(v: float) -> float:
            return top_y + panel_h - (v - lo) / (hi - lo) * panel_h

        out.append(f'<rect x="{left}" y="{top_y}" width="{_f(plot_w)}" height="{panel_h}" fill="#fafafa" '
                   f'stroke="#ccc"/>')
        for tv in _ticks(lo, hi, 4):
            y = sy(tv)
            out.append(f'<line x1="{left}" x2="{_f(left + plot_w)}" y1="{_f(y)}" y2="{_f(y)}" stroke="#e0e0e0"/>'
                       f'<text x="{left - 6}" y="{_f(y + 4)}" text-anchor="end" fill="#555">{_fmt_tick(tv)}</text>')
        out.append(f'<text x="{left - 40}" y="{top_y + panel_h / 2}" text-anchor="middle" fill="#333" '
                   f'transform="rotate(-90 {left - 40} {top_y + panel_h / 2})">{escape(ylabel)}</text>')
        for key, name, colour, dash in series:
            d = _polyline_path(((s["t"], _num(s.get(key))) for s in samples), sx, sy)
            if d:
                dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
                out.append(f'<path class="series" data-series="{key}" d="{d}" fill="none" stroke="{colour}" '
                           f'stroke-width="1.8"{dash_attr}><title>{escape(name)}</title></path>')

    panel(lag_top, [("heartbeat_lag", "heartbeat lag (s)", "#1565c0", ""),
                    ("seconds_behind", "Seconds_Behind_Source (s; gaps = NULL)", "#e65100", "5 3")],
          "lag (s)", True)
    panel(rows_top, [("source_rows", "rows on the source", "#263238", ""),
                     ("replica_rows", "rows on the replica", "#00897b", "6 3")], "rows", False)

    # X axis.
    for tv in _ticks(t_min, t_max, 10):
        x = sx(tv)
        out.append(f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{axis_y}" y2="{axis_y + 4}" stroke="#555"/>'
                   f'<text x="{_f(x)}" y="{axis_y + 15}" text-anchor="middle" fill="#555">{_fmt_tick(tv)}</text>')
    start = fmt.utc(rec.started) if rec.started else "start"
    out.append(f'<text x="{left + plot_w / 2}" y="{axis_y + 29}" text-anchor="middle" fill="#333">'
               f"seconds since {escape(start)}</text>")

    # Objective deadline: fault + RTO objective, when it falls inside the chart.
    fault_t = rec.event_t("fault_injected")
    rto_obj = next((_num(o.objective) for o in rec.objectives if o.name == "rto_seconds"), None)
    if fault_t is not None and rto_obj is not None and fault_t + rto_obj <= t_max:
        x = sx(fault_t + rto_obj)
        out.append(f'<line class="deadline" x1="{_f(x)}" x2="{_f(x)}" y1="{lanes_top}" y2="{axis_y}" '
                   f'stroke="#c62828" stroke-width="1.2" stroke-dasharray="2 2"><title>RTO objective: '
                   f"{fmt.num(rto_obj)}s after the fault</title></line>"
                   f'<text x="{_f(x - 3)}" y="{axis_y - 4}" text-anchor="end" fill="#c62828">RTO limit</text>')

    # Event markers, labels staggered on up to three rows so close events stay legible.
    row_last_x = [-1e9] * label_rows
    for ev in events:
        if ev.t is None:  # filtered above; said again for the type checker
            continue
        x = sx(ev.t)
        colour = MARKER_COLOURS.get(ev.name, "#333")
        label = ev.label
        est_w = 6.8 * len(label)
        row = next((r for r in range(label_rows) if x - est_w / 2 > row_last_x[r] + 6),
                   min(range(label_rows), key=lambda r: row_last_x[r]))
        row_last_x[row] = x + est_w / 2
        ly = 8 + 11 + row * 14
        at = fmt.utc_ms(ev.at, date=False) + "Z" if ev.at else ""
        out.append(f'<g class="marker" data-event="{escape(ev.name)}"><title>{escape(ev.name)} at t={fmt.num(ev.t)}s '
                   f"{escape(at)}</title>"
                   f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{ly + 3}" y2="{axis_y}" stroke="{colour}" '
                   f'stroke-width="1.2" stroke-dasharray="4 3"/>'
                   f'<text x="{_f(x)}" y="{ly}" text-anchor="middle" fill="{colour}" font-weight="bold">'
                   f"{escape(label)}</text></g>")

    # Legend.
    legend = [("#2e7d32", "up / Yes", None), ("#f0a30a", "connecting", None), ("#c62828", "down / No", None),
              ("#9e9e9e", "unknown / NULL", None), ("#1565c0", "heartbeat lag", ""),
              ("#e65100", "Seconds_Behind_Source", "5 3"), ("#263238", "source rows", ""),
              ("#00897b", "replica rows", "6 3")]
    x = left
    for colour, name, dash in legend:
        if dash is None:
            out.append(f'<rect x="{x}" y="{legend_y - 9}" width="12" height="10" fill="{colour}"/>')
        else:
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(f'<line x1="{x}" x2="{x + 14}" y1="{legend_y - 4}" y2="{legend_y - 4}" stroke="{colour}" '
                       f'stroke-width="2"{dash_attr}/>')
        out.append(f'<text x="{x + 17}" y="{legend_y}">{escape(name)}</text>')
        x += 26 + 6.2 * len(name)
    out.append("</svg>")
    return "".join(out)


def trend_svg(points: Sequence[TrendPoint], title: str, width: int = 960, height: int = 230) -> str:
    """Detection, recovery (RTO) and catch-up seconds per drill, in time order, with objective step lines."""
    pts = [p for p in points if any(v is not None for v in p.values.values())]
    if not pts:
        return '<p class="nochart">No measured drill for a trend yet.</p>'
    left, right, top, bottom = 60, 16, 12, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for p in pts for v in list(p.values.values()) + list(p.objectives.values()) if v is not None]
    hi = _nice_max(max(values) * 1.05)
    n = len(pts)

    def sx(i: float) -> float:
        return left + (plot_w / 2 if n == 1 else i / (n - 1) * plot_w)

    def sy(v: float) -> float:
        return top + plot_h - v / hi * plot_h

    out = [f'<svg class="trend" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" font-family="sans-serif" font-size="11"><title>{escape(title)}</title>',
           f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ccc"/>']
    for tv in _ticks(0, hi, 4):
        y = sy(tv)
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{_f(y)}" y2="{_f(y)}" stroke="#e0e0e0"/>'
                   f'<text x="{left - 6}" y="{_f(y + 4)}" text-anchor="end" fill="#555">{_fmt_tick(tv)}</text>')
    out.append(f'<text x="14" y="{top + plot_h / 2}" text-anchor="middle" fill="#333" '
               f'transform="rotate(-90 14 {top + plot_h / 2})">seconds</text>')
    for metric in TREND_METRICS:
        colour = SERIES_COLOURS[metric]
        # Objective as a dashed step line.
        obj = [(i, p.objectives.get(metric)) for i, p in enumerate(pts)]
        d = _polyline_path(((i, v) for i, v in obj), sx, sy)
        if d and n > 1:
            out.append(f'<path class="objective" d="{d}" fill="none" stroke="{colour}" stroke-width="1" '
                       f'stroke-dasharray="6 4" opacity="0.8"><title>{escape(TREND_LABELS[metric])} objective'
                       f"</title></path>")
        elif d:
            y = sy([v for _, v in obj if v is not None][0])
            out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{_f(y)}" y2="{_f(y)}" stroke="{colour}" '
                       f'stroke-dasharray="6 4"/>')
        d = _polyline_path(((i, p.values.get(metric)) for i, p in enumerate(pts)), sx, sy)
        if d:
            out.append(f'<path class="series" data-series="{metric}" d="{d}" fill="none" stroke="{colour}" '
                       f'stroke-width="1.6"><title>{escape(TREND_LABELS[metric])} (s)</title></path>')
    # Failed drills get a red mark, so a regression is visible at a glance (dots for every drill up to 200).
    for i, p in enumerate(pts):
        if p.passed is False or n <= 200:
            y = sy(max(v for v in p.values.values() if v is not None))
            colour = "#c62828" if p.passed is False else ("#2e7d32" if p.passed else "#9e9e9e")
            verdict = {True: "passed", False: "failed", None: "no verdict"}[p.passed]
            out.append(f'<circle cx="{_f(sx(i))}" cy="{_f(y)}" r="3" fill="{colour}"><title>{escape(p.run_id)} '
                       f"{fmt.utc_short(p.started)} UTC: {verdict}</title></circle>")
    # X labels: first, last and a few between.
    idx = sorted({0, n - 1, *[round(k * (n - 1) / 4) for k in range(1, 4)]}) if n > 1 else [0]
    for i in idx:
        anchor = "start" if i == 0 and n > 1 else ("end" if i == n - 1 and n > 1 else "middle")
        out.append(f'<text x="{_f(sx(i))}" y="{top + plot_h + 15}" text-anchor="{anchor}" fill="#555">'
                   f"{fmt.utc_date(pts[i].started)}</text>")
    x = left
    ly = height - 8
    for metric in TREND_METRICS:
        colour = SERIES_COLOURS[metric]
        name = f"{TREND_LABELS[metric]} (dashed: objective)"
        out.append(f'<line x1="{x}" x2="{x + 14}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" stroke-width="2"/>'
                   f'<text x="{x + 18}" y="{ly}">{escape(name)}</text>')
        x += 30 + 6 * len(name)
    out.append(f'<circle cx="{_f(x)}" cy="{ly - 4}" r="3" fill="#c62828"/><text x="{_f(x + 6)}" y="{ly}">'
               f"failed drill</text>")
    out.append("</svg>")
    return "".join(out)
