"""The review a person reads: one self-contained HTML file (inline CSS and SVG, no script, no external asset,
opens offline and prints) and its Markdown twin with the same facts in tables.

Contents, for an auditor (SOC 2 A1.3, ISO 22301 §8.5, DORA Art. 11–12): when and from where each drill ran, its
scope and scenario, objectives vs achieved, the verdict and its reasons, issues found, steady state before and
after, rollbacks, lost or unexpected writes, the integrity of each journal against the ledger, a history across
drills (pass rate, trends, last passing drill, overdue schedules), unreadable inputs, and a sign-off block.
"""
from __future__ import annotations

import getpass
import json
import os
import platform
import re
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .. import __version__
from .history import TREND_LABELS, TREND_METRICS, History, build_history
from .model import DrillRecord, Problem, Scope, load_journals
from .svg import timeline_svg, trend_svg

__all__ = ["render_html", "render_markdown", "write_report", "write_review", "METRIC_LABELS"]

METRIC_LABELS: dict[str, str] = {
    "detection_seconds": "outage detected after the fault",
    "outage_seconds": "outage duration (fault → recovery started)",
    "tunnel_recovery_seconds": "tunnel up after recovery started",
    "replica_reconnect_seconds": "replica IO reconnected after tunnel up",
    "catch_up_seconds": "replica caught up after reconnect",
    "rto_seconds": "recovery time (fault → caught up)",
    "rpo_seconds": "data-loss window (RPO achieved)",
    "lost_writes": "acknowledged writes lost",
    "unexpected_writes": "unexpected writes on the replica",
    "duplicated_writes": "duplicated writes",
    "writes_during_outage": "writes during the outage",
    "replication_latency_seconds": "write → visible on replica",
    "rpo_exposure": "RPO exposure (writes / seconds not yet on replica)",
    "apply_rate_per_second": "replica apply rate after reconnect",
}
VERDICT_CLASS = {"passed": "pass", "failed": "fail", "precondition-failed": "fail", "fault-not-effective": "fail",
                 "aborted": "fail", "died": "fail", "not-started": "warn"}
INTEGRITY_CLASS = {"verified": "pass", "no ledger": "warn", "unconfirmed": "warn"}
# Timelines are drawn for at most this many drills per page (those needing attention first, then the most recent);
# every drill keeps its facts, and its journal keeps the full timeline.
CHART_BUDGET = 100

CSS = """
:root{--pass:#1b5e20;--pass-bg:#e8f5e9;--fail:#b71c1c;--fail-bg:#ffebee;--warn:#8a5300;--warn-bg:#fff8e1;
--ink:#1a1a1a;--muted:#5f6368;--line:#d0d4d9}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);
margin:0 auto;max-width:1020px;padding:24px 20px 60px;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:34px 0 10px;border-bottom:2px solid var(--ink);
padding-bottom:4px}h3{font-size:16px;margin:0 0 8px}h4{font-size:14px;margin:16px 0 6px}
table{border-collapse:collapse;width:100%;margin:6px 0 10px}th,td{border:1px solid var(--line);padding:4px 7px;
text-align:left;vertical-align:top;overflow-wrap:break-word}th{background:#f1f3f4;font-weight:600;
overflow-wrap:normal}.dt{white-space:nowrap}.scroll{overflow-x:auto}table.compact{font-size:12.5px}table.compact td{overflow-wrap:anywhere}
table.compact code,table.compact .badge,table.compact .dt{white-space:nowrap}
table.kvt td:first-child{width:190px}td.num{text-align:right;
font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,"Liberation Mono",monospace;font-size:12px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;font-size:12px;white-space:nowrap}
.pass{color:var(--pass);background:var(--pass-bg)}.fail{color:var(--fail);background:var(--fail-bg)}
.warn{color:var(--warn);background:var(--warn-bg)}.na{color:var(--muted);background:#f1f3f4}
.meta{color:var(--muted)}nav ol{columns:2;margin:6px 0}
article.drill{border:1px solid var(--line);border-radius:6px;padding:14px 16px;margin:18px 0;
content-visibility:auto;contain-intrinsic-size:auto 2600px}
article.drill header{display:flex;justify-content:space-between;gap:12px;align-items:baseline;flex-wrap:wrap}
.kv{display:grid;grid-template-columns:190px 1fr;gap:2px 12px;margin:6px 0}.kv dt{color:var(--muted)}
.kv dd{margin:0}
ul.issues li{margin:2px 0}
figure{margin:10px 0;overflow-x:auto}figcaption{color:var(--muted);font-size:12px}
svg{max-width:100%;height:auto;background:#fff}
.alert{border:2px solid var(--fail);background:var(--fail-bg);color:var(--fail);padding:8px 12px;border-radius:6px}
.alert ul{margin:4px 0 0;padding-left:20px}tr.excluded td{background:#fafafa;color:var(--muted)}
p.first-reason{font-weight:600;margin:4px 0}
.signoff td{height:34px}.signoff th{width:220px}
.summary-box{display:flex;gap:14px;flex-wrap:wrap;margin:10px 0}
.summary-box div{border:1px solid var(--line);border-radius:6px;padding:8px 14px;min-width:150px}
.summary-box b{display:block;font-size:20px}
p.nochart{color:var(--muted);font-style:italic}
@media print{body{max-width:none;padding:0}article.drill{content-visibility:visible;break-inside:avoid-page;
page-break-before:always}
nav{display:none}a{color:inherit;text-decoration:none}}
"""


# ------------------------------------------------------------------------------------------------ formatting
def fmt_dt(dt: datetime | None) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if dt else "n/a"


def fmt_num(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        text = f"{value:g}" if isinstance(value, float) else str(value)
        return f"{text} {unit}" if unit else text
    if isinstance(value, dict):
        return ", ".join(f"{k} {fmt_num(v)}" for k, v in value.items()) or "n/a"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)


def fmt_dt_short(dt: datetime | None) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M") if dt else "n/a"


def _dt_html(dt: datetime | None, short: bool = True) -> str:
    text = fmt_dt_short(dt) if short else fmt_dt(dt)
    return f'<span class="dt">{escape(text)}</span>'


def fmt_result(passed: bool | None) -> tuple[str, str]:
    return {True: ("PASS", "pass"), False: ("FAIL", "fail"), None: ("n/a", "na")}[passed]


def fmt_ids(ids: Sequence[Any], limit: int = 20) -> str:
    if not ids:
        return "none"
    text = ", ".join(str(i) for i in ids[:limit])
    return text + (f" … ({len(ids)} in all)" if len(ids) > limit else "")


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.0f}%"


def _ran_from(rec: DrillRecord) -> str:
    parts = [rec.node or "n/a"]
    if rec.user:
        parts[0] = f"{rec.user}@{parts[0]}"
    extra = []
    if rec.drpoc_version:
        extra.append(f"drpoc-chaos {rec.drpoc_version}")
    if rec.chaoslib_version:
        extra.append(f"chaostoolkit-lib {rec.chaoslib_version}")
    return parts[0] + (f" ({', '.join(extra)})" if extra else "")


def _scope_rows(rec: DrillRecord) -> list[tuple[str, str]]:
    sc = rec.scope
    sites = []
    for site in sc.sites:
        bits = [site]
        if site in sc.gateways:
            bits.append(f"gateway {sc.gateways[site]}")
        if site in sc.subnets:
            bits.append(f"subnet {sc.subnets[site]}")
        if sc.fault_site == site:
            bits.append("fault injected here")
        sites.append(", ".join(bits))
    inv = sc.inventory or "n/a"
    if sc.inventory_path:
        inv += f" ({sc.inventory_path})"
    return [("inventory", inv), ("sites", "; ".join(sites) or "n/a"), ("VPN connection", sc.connection or "n/a"),
            ("source database", sc.source or "n/a"), ("replica database", sc.replica or "n/a")]


def _objective_rows(rec: DrillRecord) -> list[tuple[str, str, str, bool | None]]:
    rows = []
    for o in rec.objectives:
        rows.append((o.name, fmt_num(o.objective, o.unit), fmt_num(o.achieved, o.unit), o.passed))
    return rows


def _metric_rows(rec: DrillRecord) -> list[tuple[str, str, str]]:
    rows = []
    keys = list(METRIC_LABELS) + [k for k in rec.metrics if k not in METRIC_LABELS]
    for k in keys:
        if k not in rec.metrics:
            continue
        v = rec.metrics[k]
        unit = "s" if k.endswith("_seconds") and not isinstance(v, dict) else ""
        if k == "apply_rate_per_second" and v is not None:
            unit = "rows/s"
        rows.append((k, METRIC_LABELS.get(k, k.replace("_", " ")),
                     fmt_num(v, unit) if not isinstance(v, (dict, list)) or v else "n/a"))
    return rows


def _timeline_summary(rec: DrillRecord) -> str:
    s = rec.timeline
    if not s:
        return "no timeline samples"
    lags = [x.get("heartbeat_lag") for x in s if isinstance(x.get("heartbeat_lag"), (int, float))]
    io_states = []
    for x in s:
        v = x.get("io") if x.get("io") is not None else "NULL"
        if not io_states or io_states[-1] != v:
            io_states.append(v)
    last = s[-1]
    text = f"{len(s)} samples"
    if rec.interval_seconds:
        text += f" every {rec.interval_seconds:g} s"
    text += f" over {s[-1]['t'] - s[0]['t']:g} s"
    if lags:
        text += f"; max heartbeat lag {max(lags):g} s"
    text += f"; replica IO thread: {' → '.join(str(v) for v in io_states[:12])}"
    if last.get("source_rows") is not None or last.get("replica_rows") is not None:
        text += f"; last sample: {last.get('source_rows', 'n/a')} rows on source, " \
                f"{last.get('replica_rows', 'n/a')} on replica"
    return text


def _steady_text(state) -> str:
    probes = ", ".join(f"{p.name} {'ok' if p.tolerance_met else ('FAILED' if p.tolerance_met is False else 'n/a')}"
                       for p in state.probes)
    return state.label + (f" ({probes})" if probes else "")


def _problem_groups(problems: Sequence[Problem]) -> tuple[list[Problem], list[Problem]]:
    integrity = [p for p in problems if p.kind == "integrity"]
    return [p for p in problems if p.kind != "integrity"], integrity


def _anchor(rec: DrillRecord) -> str:
    return "run-" + "".join(c if c.isalnum() else "-" for c in f"{rec.run_id}-{rec.file}")


def _header_facts(records: Sequence[DrillRecord], problems: Sequence[Problem], history: History,
                  inputs: Sequence[str] | None) -> list[tuple[str, str]]:
    period = "n/a"
    if history.first and history.last:
        period = f"{history.first:%Y-%m-%d} to {history.last:%Y-%m-%d} (UTC)"
    try:
        who = f"{getpass.getuser()}@{platform.node()}"
    except Exception:  # noqa: BLE001 - no user name in some containers; the host is enough
        who = platform.node()
    return [
        ("generated", fmt_dt(history.generated_at)),
        ("generated by", f"{who}, drpoc-chaos {__version__}"),
        ("inputs", ", ".join(inputs) if inputs else "n/a"),
        ("period covered", period),
        ("journals reviewed", f"{len(records)} ({sum(1 for r in records if r.is_drpoc)} DR drills, "
                              f"{sum(1 for r in records if not r.is_drpoc)} other Chaos Toolkit journals)"),
        ("integrity", integrity_summary(records, problems)),
        ("outcomes", outcome_summary(records, history)),
        ("problems", f"{len(problems)} (see Problems)" if problems else "none"),
    ]


def integrity_findings(problems: Sequence[Problem]) -> list[Problem]:
    return [p for p in problems if p.kind == "integrity"]


def integrity_summary(records: Sequence[DrillRecord], problems: Sequence[Problem]) -> str:
    """One sentence; never "N of N verified" while an archive has a finding."""
    findings = integrity_findings(problems)
    verified = sum(1 for r in records if r.integrity == "verified")
    untrusted = sum(1 for r in records if not r.trusted)
    loose = sum(1 for r in records if r.integrity == "no ledger")
    text = f"{verified} of {len(records)} journal(s) verified against the ledger"
    if loose:
        text += f"; {loose} not in an archive (nothing vouches for them)"
    if untrusted:
        text += f"; {untrusted} cannot be trusted (modified, unverifiable or badly signed): excluded from the pass " \
                "rate and the trends"
    if findings:
        return f"FAILED: {len(findings)} integrity finding(s) — " + text
    return text


def outcome_summary(records: Sequence[DrillRecord], history: History) -> str:
    failed = sum(1 for r in records if r.counted and r.passed is False)
    return (f"{history.passed} of {history.judged} judged drill(s) passed ({_pct(history.pass_rate)}); "
            f"{failed} not passed (of which {history.died} died); {len(history.not_started)} not started (not "
            f"counted); {len(history.excluded)} excluded (integrity)")


def chart_selection(records: Sequence[DrillRecord], budget: int = CHART_BUDGET) -> set[int]:
    """ids of the records whose timeline is drawn: drills needing attention first, then the most recent."""
    ranked = sorted(records, key=lambda r: (r.passed is True and r.trusted and r.integrity == "verified",
                                            -(r.started.timestamp() if r.started else 0.0)))
    return {id(r) for r in ranked[:budget]}


# ------------------------------------------------------------------------------------------------ HTML
def _h(text: Any) -> str:
    return escape("" if text is None else str(text))


def _badge(text: str, cls: str) -> str:
    return f'<span class="badge {cls}">{_h(text)}</span>'


def _verdict_badge(rec: DrillRecord) -> str:
    return _badge(rec.verdict_label, VERDICT_CLASS.get(rec.verdict or "", "na"))


def _integrity_badge(rec: DrillRecord) -> str:
    label = rec.integrity if rec.trusted else f"{rec.integrity}: excluded"
    return _badge(label, INTEGRITY_CLASS.get(rec.integrity, "fail"))


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    head = "".join(f"<th>{_h(h)}</th>" for h in headers)
    head = f"<thead><tr>{head}</tr></thead>" if any(headers) else ""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<div class="scroll"><table class="{cls}">{head}<tbody>{body}</tbody></table></div>'


def _kv(rows: Iterable[tuple[str, str]]) -> str:
    return '<dl class="kv">' + "".join(f"<dt>{_h(k)}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def _died_rows(rec: DrillRecord) -> list[tuple[str, str]]:
    died = rec.died or {}
    recover = died.get("recover")
    fired = rec.deadman_fired
    return [("detected by", fmt_num(died.get("detected_by"))), ("last step", fmt_num(died.get("last_step"))),
            ("last step at", fmt_num(died.get("last_step_at"))),
            ("fault injected", fmt_num(died.get("fault_injected"))),
            ("dead-man's switch", {True: "FIRED", False: "did not fire", None: "no record"}[fired]),
            ("recovered by", "n/a" if not isinstance(recover, dict) else
             ", ".join(f"{k} {fmt_num(v)}" for k, v in recover.items()) or "n/a")]


def _html_drill(rec: DrillRecord, chart: bool = True, same_scope_as: DrillRecord | None = None) -> str:
    """One drill. ``chart`` False: a compact entry (every fact that judges the drill, its integrity and its
    writes; no chart, event, metric or rollback tables: its journal has them). ``same_scope_as``: the scope table is
    replaced by a link to that drill's, which has the same scope."""
    o: list[str] = []
    o.append(f'<article class="drill" id="{_anchor(rec)}"><header><h3>{_h(rec.scenario)} — '
             f'{_h(fmt_dt(rec.started))}</h3><div>{_verdict_badge(rec)} {_integrity_badge(rec)}</div></header>')
    o.append(_kv([
        ("run id", f'<code>{_h(rec.run_id)}</code>'),
        ("title", _h(rec.title)),
        ("started / ended", f"{_h(fmt_dt(rec.started))} → {_h(fmt_dt(rec.ended))}"
                            + (f" ({rec.duration_seconds:.1f} s)" if rec.duration_seconds is not None else "")),
        ("ran from", _h(_ran_from(rec))),
        ("journal", f'<code>{_h(rec.path)}</code>'),
        ("sha256", f'<code>{_h(rec.sha256)}</code>'),
        ("integrity", f"{_integrity_badge(rec)} {_h(rec.integrity_detail)}"),
    ]))
    if rec.integrity_findings or not rec.trusted:
        o.append('<div class="alert"><b>Integrity: ' + _h(rec.integrity) + (
            "" if rec.trusted else " — this journal cannot be trusted; excluded from the pass rate and the trends")
            + "</b>" + ("<ul>" + "".join(f"<li>{_h(f)}</li>" for f in rec.integrity_findings) + "</ul>"
                        if rec.integrity_findings else "") + "</div>")
    if rec.first_reason and rec.passed is not True:
        o.append(f'<p class="first-reason">{_h(rec.first_reason)}</p>')
    if rec.not_started:
        o.append(_kv([("not started", _badge(rec.cause or "cause not recorded", "warn")
                       + " the drill never got going: nothing was touched; counted apart, not in the pass rate")]))
    if rec.verdict == "died":
        o.append("<h4>The drill died</h4>" + _kv((k, _h(v)) for k, v in _died_rows(rec)))
    if rec.warnings:
        o.append("<p>" + "<br>".join(_badge("note", "warn") + " " + _h(w) for w in rec.warnings) + "</p>")
    o.append("<h4>Scope</h4>")
    if same_scope_as is not None:
        o.append(f'<p>Same as <a href="#{_anchor(same_scope_as)}">the drill above</a> '
                 f"({_h(_scope_rows(rec)[2][1])}; {_h(rec.scope.source or 'n/a')} → "
                 f"{_h(rec.scope.replica or 'n/a')}).</p>")
    else:
        o.append(_table(["", ""], [(f"<b>{_h(k)}</b>", _h(v)) for k, v in _scope_rows(rec)], cls="kvt"))
    o.append("<h4>Objectives vs achieved</h4>")
    rows = _objective_rows(rec)
    if rows:
        o.append(_table(["objective", "target", "achieved", "result"],
                        [(f"<code>{_h(n)}</code>", _h(t), _h(a), _badge(*fmt_result(p))) for n, t, a, p in rows]))
    else:
        o.append("<p>n/a: this journal records no objectives.</p>")
    o.append(f"<h4>Verdict: {_verdict_badge(rec)}</h4>")
    if rec.reasons:
        o.append("<ul>" + "".join(f"<li>{_h(r)}</li>" for r in rec.reasons) + "</ul>")
    elif rec.verdict is None:
        o.append("<p>n/a: not a drpoc drill journal; see the Chaos Toolkit status below.</p>")
    o.append("<h4>Issues found</h4>")
    if rec.issues:
        o.append('<ul class="issues">' + "".join(f"<li>{_h(i)}</li>" for i in rec.issues) + "</ul>")
    else:
        o.append("<p>None.</p>")
    o.append("<h4>Timeline</h4>")
    if chart:
        o.append(f"<figure>{timeline_svg(rec)}<figcaption>{_h(_timeline_summary(rec))}</figcaption></figure>")
    else:
        w = rec.writes
        o.append(f'<p class="nochart">{_h(_timeline_summary(rec))}. Chart, events and measurements not drawn on '
                 f"this page (they are for the {CHART_BUDGET} drills that most need attention); "
                 f"<code>drpoc review {_h(rec.path)}</code> shows them.</p>")
        o.append(_kv([
            ("writes", _h(f"attempted {fmt_num(w.attempted)}, acknowledged {fmt_num(w.acknowledged)}, observed "
                          f"{fmt_num(w.observed)}, lost {fmt_ids(w.lost)}, unexpected {fmt_ids(w.unexpected)}, "
                          f"duplicated {fmt_ids(w.duplicated)}") if w.known else "n/a: no write ledger"),
            ("steady state", _h(f"before: {_steady_text(rec.steady_before)}; after: "
                                f"{_steady_text(rec.steady_after)}")),
            ("Chaos Toolkit status", _h((rec.chaos_status or "n/a") + (" (deviated)" if rec.deviated else ""))),
            ("rollbacks", _h(", ".join(f"{r.name} {r.status or 'n/a'}" for r in rec.rollbacks) or "none run")),
        ]))
        o.append("</article>")
        return "".join(o)
    if rec.events:
        o.append(_table(["event", "t (s)", "at (UTC)"],
                        [(_h(e.label), f'{e.t:g}' if e.t is not None else "n/a",
                          _h(e.at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if e.at else "n/a")) for e in rec.events]))
    o.append("<h4>Measured</h4>")
    mrows = _metric_rows(rec)
    o.append(_table(["metric", "meaning", "value"], [(f"<code>{_h(k)}</code>", _h(lbl), _h(v))
                                                    for k, lbl, v in mrows]) if mrows else "<p>n/a</p>")
    w = rec.writes
    o.append("<h4>Writes (acknowledged vs observed)</h4>")
    if w.known:
        o.append(_table(["attempted", "acknowledged", "observed", "lost", "unexpected", "duplicated"], [(
            fmt_num(w.attempted), fmt_num(w.acknowledged), fmt_num(w.observed),
            (_badge(fmt_ids(w.lost), "fail") if w.lost else "none"),
            (_badge(fmt_ids(w.unexpected), "fail") if w.unexpected else "none"),
            (_badge(fmt_ids(w.duplicated), "fail") if w.duplicated else "none"))]))
    else:
        o.append("<p>n/a: no write ledger in this journal.</p>")
    o.append("<h4>Steady state, run and rollbacks</h4>")
    o.append(_kv([
        ("steady state before", _h(_steady_text(rec.steady_before))),
        ("steady state after", _h(_steady_text(rec.steady_after))),
        ("Chaos Toolkit status", _h(rec.chaos_status or "n/a")
         + (" (deviated)" if rec.deviated else "")),
        ("rollbacks", _h(f"{len(rec.rollbacks)} run" if rec.rollbacks else "none run")
         + (" — forced by the drill control" if rec.rollbacks_forced else "")),
    ]))
    if rec.rollbacks:
        o.append(_table(["rollback", "status", "duration"], [
            (_h(r.name), _badge(r.status or "n/a", "pass" if r.status == "succeeded" else "fail"),
             fmt_num(r.duration, "s")) for r in rec.rollbacks]))
    o.append("</article>")
    return "".join(o)


def render_html(records: Sequence[DrillRecord], problems: Sequence[Problem], history: History, *,
                title: str = "Disaster-recovery drill evidence", inputs: Sequence[str] | None = None) -> str:
    """The whole review as one self-contained HTML document."""
    records = sorted(records, key=lambda r: (r.started is None, -(r.started.timestamp() if r.started else 0)))
    o: list[str] = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
                    '<meta name="viewport" content="width=device-width, initial-scale=1">'
                    f"<title>{_h(title)}</title><style>{CSS}</style></head><body>"]
    o.append(f"<header><h1>{_h(title)}</h1>")
    o.append(_kv((k, _h(v)) for k, v in _header_facts(records, problems, history, inputs)))
    findings = integrity_findings(problems)
    if findings:
        shown = findings[:25]
        o.append('<div class="alert" id="integrity-alert"><b>' + _h(integrity_summary(records, problems))
                 + "</b><ul>" + "".join(f"<li><code>{_h(p.source)}</code>: {_h(p.message)}</li>" for p in shown)
                 + (f"<li>… {len(findings) - len(shown)} more under Problems</li>" if len(findings) > len(shown)
                    else "") + "</ul></div>")
    o.append("</header>")
    o.append('<nav><b>Contents</b><ol><li><a href="#summary">Summary of drills</a></li>'
             '<li><a href="#history">History and schedule</a></li><li><a href="#problems">Problems</a></li>'
             '<li><a href="#drills">Drill details</a></li><li><a href="#signoff">Sign-off</a></li></ol></nav>')

    # Summary.
    o.append('<section id="summary"><h2>Summary of drills</h2>')
    failed = [r for r in records if r.counted and r.passed is False]
    o.append('<div class="summary-box">'
             f"<div>drills judged<b>{history.judged}</b></div>"
             f"<div>passed<b>{history.passed}</b></div>"
             f"<div>pass rate<b>{_pct(history.pass_rate)}</b></div>"
             f"<div>not passed<b>{len(failed)}</b></div>"
             f"<div>died<b>{history.died}</b></div>"
             f"<div>not started<b>{len(history.not_started)}</b></div>"
             f"<div>excluded (integrity)<b>{len(history.excluded)}</b></div>"
             f"<div>scenarios overdue<b>{len(history.overdue)}</b></div>"
             f"<div>problems<b>{len(problems)}</b></div></div>")
    o.append("<p>The pass rate counts judged drills from journals that can be trusted: a drill that died counts as "
             "not passed; a drill that did not start is counted apart; a journal that was modified, cannot be "
             "verified or is badly signed is excluded and listed below.</p>")
    if records:
        o.append(_summary_table(records))
    else:
        o.append("<p>No journal could be read.</p>")
    if history.not_started:
        o.append(f"<h3>Not started ({len(history.not_started)})</h3><p>These drills never got going: nothing was "
                 "touched and they are not drill failures; their cause needs fixing before the next run.</p>")
        o.append(_table(["started (UTC)", "scenario", "run id", "cause", "first reason"], [
            (_dt_html(r.started), _h(r.scenario), f'<a href="#{_anchor(r)}"><code>{_h(r.run_id[:8])}</code></a>',
             _badge(r.cause or "n/a", "warn"), _h(r.first_reason or "n/a")) for r in history.not_started],
            cls="compact"))
    if history.excluded:
        o.append(f"<h3>Excluded: journals that cannot be trusted ({len(history.excluded)})</h3><p>Left out of the "
                 "pass rate, the trends and the last passing drill.</p>")
        o.append(_table(["started (UTC)", "scenario", "run id", "verdict claimed", "integrity", "finding"], [
            (_dt_html(r.started), _h(r.scenario), f'<a href="#{_anchor(r)}"><code>{_h(r.run_id[:8])}</code></a>',
             _h(r.verdict_label), _integrity_badge(r), _h("; ".join(r.integrity_findings) or r.integrity_detail))
            for r in history.excluded], cls="compact"))
    o.append("</section>")

    # History.
    o.append('<section id="history"><h2>History and schedule</h2>')
    o.append(f"<p>{history.passed} of {history.judged} judged drill(s) passed ({_pct(history.pass_rate)}). "
             "A precondition failure or an abort counts as not passed; journals without a drpoc verdict are not "
             "counted. A scenario is due again one interval after its last <em>passing</em> drill.</p>")
    o.append(_table(["scenario", "drills", "passed", "pass rate", "last drill", "last passing drill",
                     "expected every", "next due", "status"], [
        (_h(s.scenario), _h(s.drills), _h(s.passed), _h(_pct(s.pass_rate)),
         (f"{_dt_html(s.last_run.started)} {_verdict_badge(s.last_run)}" if s.last_run else "never"),
         (f'<a href="#{_anchor(s.last_pass)}">{_dt_html(s.last_pass.started)}</a> '
          f'<code>{_h(s.last_pass.run_id[:8])}</code>' if s.last_pass else "never"),
         _h(f"{s.interval_days:g} days" if s.interval_days else "no schedule"),
         _dt_html(s.due) if s.due else "n/a",
         _badge(s.schedule_status, "fail" if s.schedule_status.startswith("OVERDUE") else
                ("pass" if s.schedule_status == "on schedule" else "na")))
        for s in history.scenarios], cls="compact"))
    for s in history.scenarios:
        if not s.trend:
            continue
        o.append(f"<h3>Trend: {_h(s.scenario)}</h3><figure>"
                 + trend_svg(s.trend, f"Detection, recovery and catch-up times for {s.scenario}")
                 + "<figcaption>Seconds per drill in time order; dashed lines are the objectives in force at "
                   "each drill; red dots mark drills that did not pass.</figcaption></figure>")
        o.append(_table(["metric", "drills measured", "latest", "best", "worst", "objective (latest)",
                         "drills over objective"], [_trend_row(s.trend, m) for m in TREND_METRICS]))
    o.append("</section>")

    # Problems.
    inputs_p, integrity_p = _problem_groups(problems)
    o.append('<section id="problems"><h2>Problems</h2>')
    o.append("<h3>Unreadable or incomplete inputs</h3>")
    o.append(_table(["input", "kind", "problem"], [(f"<code>{_h(p.source)}</code>", _h(p.kind), _h(p.message))
                                                  for p in inputs_p]) if inputs_p else "<p>None.</p>")
    o.append("<h3>Integrity findings (archive and ledger)</h3>")
    o.append(_table(["where", "finding"], [(f"<code>{_h(p.source)}</code>", _h(p.message)) for p in integrity_p])
             if integrity_p else "<p>None: every archive read verified against its ledger.</p>")
    o.append("</section>")

    # Drills.
    o.append('<section id="drills"><h2>Drill details</h2>')
    charted = chart_selection(records)
    o.append("".join(_html_drill(r, id(r) in charted, records[i - 1] if i and records[i - 1].scope == r.scope
                                 and r.scope != Scope() else None)
                     for i, r in enumerate(records)) or "<p>None.</p>")
    o.append("</section>")

    # Sign-off.
    o.append('<section id="signoff"><h2>Sign-off</h2><p>I have reviewed the drills above, their objectives, the '
             "issues found and the integrity of their records.</p>")
    o.append('<table class="signoff"><tbody>' + "".join(
        f"<tr><th>{_h(k)}</th><td></td></tr>" for k in
        ("Reviewer name", "Role", "Date", "Signature", "Actions agreed for the issues found", "Follow-up owner and "
         "due date")) + "</tbody></table>")
    o.append("</section>")
    o.append(f'<footer class="meta"><p>Generated by drpoc-chaos {_h(__version__)} on '
             f"{_h(fmt_dt(history.generated_at))}. Each journal's sha256 is shown with its drill; "
             "<code>drpoc verify</code> re-checks the archive against its hash-chained ledger.</p></footer>")
    o.append("</body></html>\n")
    return "".join(o)


def _summary_table(records: Sequence[DrillRecord]) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("started (UTC)", "scenario", "run id", "verdict", "first reason",
                                             "RTO achieved / objective", "lost writes", "issues", "integrity"))
    rows = []
    for r in records:
        reason = r.first_reason if r.passed is not True or not r.trusted else ""
        more = len(r.reasons) - 1
        cells = (_dt_html(r.started), _h(r.scenario),
                 f'<a href="#{_anchor(r)}"><code>{_h(r.run_id[:8])}</code></a>', _verdict_badge(r),
                 _h(reason) + (f' <a href="#{_anchor(r)}">(+{more} more)</a>' if reason and more > 0 else ""),
                 _h(_rto_text(r)), _h(len(r.writes.lost) if r.writes.known else "n/a"), _h(len(r.issues)),
                 _integrity_badge(r))
        cls = "" if r.trusted else ' class="excluded"'
        rows.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (f'<div class="scroll"><table class="compact"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}'
            "</tbody></table></div>")


def _rto_text(rec: DrillRecord) -> str:
    obj = next((o for o in rec.objectives if o.name == "rto_seconds"), None)
    achieved = rec.metric("rto_seconds")
    if obj is None and achieved is None:
        return "n/a"
    a = f"{achieved:g} s" if achieved is not None else "n/a"
    t = fmt_num(obj.objective, "s") if obj else "n/a"
    return f"{a} / {t}"


def _trend_row(points, metric: str) -> tuple[str, ...]:
    vals = [(p.values.get(metric), p.objectives.get(metric)) for p in points]
    measured = [v for v, _ in vals if v is not None]
    over = sum(1 for v, obj in vals if v is not None and obj is not None and v > obj)
    latest = next((v for v, _ in reversed(vals) if v is not None), None)
    latest_obj = next((obj for _, obj in reversed(vals) if obj is not None), None)
    return (_h(TREND_LABELS[metric]), _h(len(measured)), _h(fmt_num(latest, "s")),
            _h(fmt_num(min(measured), "s") if measured else "n/a"),
            _h(fmt_num(max(measured), "s") if measured else "n/a"), _h(fmt_num(latest_obj, "s")),
            _badge(str(over), "fail" if over else "pass"))


# ------------------------------------------------------------------------------------------------ Markdown
# Inline specials (&, <, > become entities); "_" only where it could open or close emphasis (not in vpn_outage).
_MD_SPECIAL_RE = re.compile(r"([\\`*{}\[\]|~!$]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
_MD_LINE_START_RE = re.compile(r"^(\s*)([#+\-=>]|\d+[.)])")  # what would start a block at the start of a line
_MD_CODE_SAFE_RE = re.compile(r"^[A-Za-z0-9_.:/@+=,\- ]*$")


class _Raw(str):
    """Markdown the report itself wrote (a code span of a safe value): not escaped again."""


def _md(text: Any) -> str:
    """Text from a journal as inert Markdown: HTML escaped, every Markdown special backslash-escaped, line breaks
    and other control characters turned into spaces (a newline could start a heading, a list or a table row)."""
    if isinstance(text, _Raw):
        return str(text)
    s = "" if text is None else str(text)
    s = re.sub(r"[\x00-\x1f\x7f\u2028\u2029\x85]+", " ", s)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _MD_SPECIAL_RE.sub(r"\\\1", s)
    return _MD_LINE_START_RE.sub(lambda m: m.group(1) + "\\" + m.group(2), s)


def _code(text: Any) -> str:
    """A code span when the value is plainly safe in one (identifiers, paths, hashes); escaped text otherwise."""
    s = "" if text is None else str(text)
    if s and _MD_CODE_SAFE_RE.match(s):
        return _Raw(f"`{s}`")
    return _md(s)


def _md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(_md(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def render_markdown(records: Sequence[DrillRecord], problems: Sequence[Problem], history: History, *,
                    title: str = "Disaster-recovery drill evidence", inputs: Sequence[str] | None = None) -> str:
    """The same facts as ``render_html``, as Markdown tables (no chart)."""
    records = sorted(records, key=lambda r: (r.started is None, -(r.started.timestamp() if r.started else 0)))
    o: list[str] = [f"# {title}\n"]
    o.append(_md_table(["", ""], _header_facts(records, problems, history, inputs)))
    findings = integrity_findings(problems)
    if findings:
        o.append(f"> **{_md(integrity_summary(records, problems))}**\n>\n"
                 + "\n".join(f"> - {_code(p.source)}: {_md(p.message)}" for p in findings[:25])
                 + (f"\n> - … {len(findings) - 25} more under Problems" if len(findings) > 25 else "") + "\n")
    o.append("## Summary of drills\n")
    o.append(f"{_md(outcome_summary(records, history))}; {len(history.overdue)} scenario(s) overdue; "
             f"{len(problems)} problem(s).\n")
    if records:
        o.append(_md_table(["started (UTC)", "scenario", "run id", "verdict", "first reason",
                            "RTO achieved / objective", "lost writes", "issues", "integrity"],
                           [(fmt_dt(r.started), r.scenario, _code(r.run_id[:8]), r.verdict_label,
                             (r.first_reason or "") if r.passed is not True or not r.trusted else "",
                             _rto_text(r), len(r.writes.lost) if r.writes.known else "n/a", len(r.issues),
                             r.integrity if r.trusted else f"{r.integrity}: excluded") for r in records]))
    else:
        o.append("No journal could be read.\n")
    if history.not_started:
        o.append(f"### Not started ({len(history.not_started)})\n")
        o.append("Nothing was touched; not drill failures, not in the pass rate.\n")
        o.append(_md_table(["started (UTC)", "scenario", "run id", "cause", "first reason"],
                           [(fmt_dt(r.started), r.scenario, _code(r.run_id[:8]), r.cause or "n/a",
                             r.first_reason or "n/a") for r in history.not_started]))
    if history.excluded:
        o.append(f"### Excluded: journals that cannot be trusted ({len(history.excluded)})\n")
        o.append(_md_table(["started (UTC)", "scenario", "run id", "verdict claimed", "integrity", "finding"],
                           [(fmt_dt(r.started), r.scenario, _code(r.run_id[:8]), r.verdict_label, r.integrity,
                             "; ".join(r.integrity_findings) or r.integrity_detail) for r in history.excluded]))
    o.append("## History and schedule\n")
    o.append("A precondition failure or an abort counts as not passed; journals without a drpoc verdict are not "
             "counted. A scenario is due again one interval after its last passing drill.\n")
    o.append(_md_table(["scenario", "drills", "passed", "pass rate", "last drill", "last passing drill",
                        "expected every", "next due", "status"],
                       [(s.scenario, s.drills, s.passed, _pct(s.pass_rate),
                         f"{fmt_dt(s.last_run.started)} ({s.last_run.verdict_label})" if s.last_run else "never",
                         f"{fmt_dt(s.last_pass.started)} {s.last_pass.run_id[:12]}" if s.last_pass else "never",
                         f"{s.interval_days:g} days" if s.interval_days else "no schedule",
                         fmt_dt(s.due) if s.due else "n/a", s.schedule_status) for s in history.scenarios]))
    for s in history.scenarios:
        if s.trend:
            o.append(f"### Trend: {_md(s.scenario)}\n")
            rows = []
            for m in TREND_METRICS:
                r = _trend_row(s.trend, m)
                rows.append([_strip_tags(c) for c in r])
            o.append(_md_table(["metric", "drills measured", "latest", "best", "worst", "objective (latest)",
                                "drills over objective"], rows))
    inputs_p, integrity_p = _problem_groups(problems)
    o.append("## Problems\n")
    o.append("### Unreadable or incomplete inputs\n")
    o.append(_md_table(["input", "kind", "problem"], [(_code(p.source), p.kind, p.message) for p in inputs_p])
             if inputs_p else "None.\n")
    o.append("### Integrity findings (archive and ledger)\n")
    o.append(_md_table(["where", "finding"], [(_code(p.source), p.message) for p in integrity_p])
             if integrity_p else "None: every archive read verified against its ledger.\n")
    o.append("## Drill details\n")
    for rec in records:
        o.append(_md_drill(rec))
    o.append("## Sign-off\n")
    o.append("I have reviewed the drills above, their objectives, the issues found and the integrity of their "
             "records.\n")
    o.append(_md_table(["", ""], [(k, " ") for k in ("Reviewer name", "Role", "Date", "Signature",
                                                      "Actions agreed for the issues found",
                                                      "Follow-up owner and due date")]))
    o.append(f"\nGenerated by drpoc-chaos {__version__} on {fmt_dt(history.generated_at)}. `drpoc verify` "
             "re-checks the archive against its hash-chained ledger.\n")
    return "\n".join(o)


def _strip_tags(html_text: str) -> str:
    return re.sub(r"<[^>]+>", "", html_text).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">") \
        .replace("&#x27;", "'").replace("&quot;", '"')


def _md_drill(rec: DrillRecord) -> str:
    o = [f"### {_md(rec.scenario)} — {fmt_dt(rec.started)} — {_md(rec.verdict_label)}\n"]
    if rec.integrity_findings or not rec.trusted:
        o.append(f"> **Integrity: {_md(rec.integrity)}"
                 + ("" if rec.trusted else " — cannot be trusted; excluded from the pass rate and the trends") + "**"
                 + "".join(f"\n> - {_md(f)}" for f in rec.integrity_findings) + "\n")
    if rec.first_reason and rec.passed is not True:
        o.append(f"**{_md(rec.first_reason)}**\n")
    if rec.not_started:
        o.append(f"Not started: cause **{_md(rec.cause or 'not recorded')}**; nothing was touched; counted apart, "
                 "not in the pass rate.\n")
    if rec.verdict == "died":
        o.append("**The drill died**\n")
        o.append(_md_table(["", ""], _died_rows(rec)))
    o.append(_md_table(["", ""], [
        ("run id", _code(rec.run_id)), ("title", rec.title),
        ("started / ended", f"{fmt_dt(rec.started)} → {fmt_dt(rec.ended)}"
         + (f" ({rec.duration_seconds:.1f} s)" if rec.duration_seconds is not None else "")),
        ("ran from", _ran_from(rec)), ("journal", _code(rec.path)), ("sha256", _code(rec.sha256)),
        ("integrity", f"{rec.integrity}: {rec.integrity_detail}" if rec.integrity_detail else rec.integrity),
        *[("note", w) for w in rec.warnings],
    ]))
    o.append("**Scope**\n")
    o.append(_md_table(["", ""], _scope_rows(rec)))
    o.append("**Objectives vs achieved**\n")
    rows = _objective_rows(rec)
    o.append(_md_table(["objective", "target", "achieved", "result"],
                       [(_code(n), t, a, fmt_result(p)[0]) for n, t, a, p in rows]) if rows else
             "n/a: this journal records no objectives.\n")
    o.append(f"**Verdict: {_md(rec.verdict_label)}**\n")
    if rec.reasons:
        o.append("\n".join(f"- {_md(r)}" for r in rec.reasons) + "\n")
    o.append("**Issues found**\n")
    o.append(("\n".join(f"- {_md(i)}" for i in rec.issues) + "\n") if rec.issues else "None.\n")
    o.append(f"**Timeline**: {_md(_timeline_summary(rec))}\n")
    if rec.events:
        o.append(_md_table(["event", "t (s)", "at (UTC)"], [
            (e.label, f"{e.t:g}" if e.t is not None else "n/a",
             e.at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if e.at else "n/a") for e in rec.events]))
    mrows = _metric_rows(rec)
    o.append("**Measured**\n")
    o.append(_md_table(["metric", "meaning", "value"], [(_code(k), lbl, v) for k, lbl, v in mrows])
             if mrows else "n/a\n")
    w = rec.writes
    o.append("**Writes (acknowledged vs observed)**\n")
    o.append(_md_table(["attempted", "acknowledged", "observed", "lost", "unexpected", "duplicated"],
                       [(fmt_num(w.attempted), fmt_num(w.acknowledged), fmt_num(w.observed), fmt_ids(w.lost),
                         fmt_ids(w.unexpected), fmt_ids(w.duplicated))]) if w.known else
             "n/a: no write ledger in this journal.\n")
    o.append("**Steady state, run and rollbacks**\n")
    o.append(_md_table(["", ""], [
        ("steady state before", _steady_text(rec.steady_before)),
        ("steady state after", _steady_text(rec.steady_after)),
        ("Chaos Toolkit status", (rec.chaos_status or "n/a") + (" (deviated)" if rec.deviated else "")),
        ("rollbacks", (f"{len(rec.rollbacks)} run" if rec.rollbacks else "none run")
         + (" — forced by the drill control" if rec.rollbacks_forced else "")),
        *[(f"rollback {r.name}", f"{r.status or 'n/a'} ({fmt_num(r.duration, 's')})") for r in rec.rollbacks],
    ]))
    return "\n".join(o)


# ------------------------------------------------------------------------------------------------ files
def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_review(records: Sequence[DrillRecord], problems: Sequence[Problem], history: History,
                 out_dir: str | os.PathLike[str], *, inputs: Sequence[str] | None = None,
                 basename: str = "drpoc-review") -> tuple[Path, Path]:
    """Write already loaded records as ``<out_dir>/<basename>.html`` and ``.md`` (each atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    html_path, md_path = out / f"{basename}.html", out / f"{basename}.md"
    _atomic_write(html_path, render_html(records, problems, history, inputs=inputs))
    _atomic_write(md_path, render_markdown(records, problems, history, inputs=inputs))
    return html_path, md_path


def write_report(paths: Iterable[str | os.PathLike[str]], out_dir: str | os.PathLike[str], *,
                 expected_interval_days: Mapping[str, float | None] | None = None, public_key: Any = None,
                 now: datetime | None = None, basename: str = "drpoc-review",
                 ) -> tuple[Path, Path]:
    """Load the journals in ``paths``, build the history and write ``<out_dir>/<basename>.html`` and ``.md``.
    Returns both paths."""
    paths = [os.fspath(p) for p in paths]
    records, problems = load_journals(paths, public_key=public_key)
    history = build_history(records, expected_interval_days, now)
    return write_review(records, problems, history, out_dir, inputs=paths, basename=basename)


def report_json_summary(records: Sequence[DrillRecord], problems: Sequence[Problem], history: History) -> str:
    """A small machine-readable summary (for a Prefect artifact or CI), no secrets, no timeline."""
    return json.dumps({
        "generated": fmt_dt(history.generated_at), "drills": len(records), "judged": history.judged,
        "passed": history.passed, "overdue": [s.scenario for s in history.overdue],
        "problems": [str(p) for p in problems],
        "failed_runs": [r.run_id for r in records if r.passed is False],
    }, indent=2)

