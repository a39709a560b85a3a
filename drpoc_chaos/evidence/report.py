"""The review a person reads: one self-contained HTML file (inline CSS and SVG, no script, no external asset,
opens offline and prints) and its Markdown twin with the same facts in tables.

Contents, for an auditor (SOC 2 A1.3, ISO 22301 §8.5, DORA Art. 11–12): when and from where each drill ran, its
scope and scenario, objectives vs achieved, the verdict and its reasons, issues found, steady state before and
after, rollbacks, lost or unexpected writes, the integrity of each journal against the ledger, a history across
drills (pass rate, trends, last passing drill, overdue schedules), unreadable inputs, and a sign-off block.

This module gathers the facts; the layout is in ``templates/report.html`` (jinja2, autoescape on) and
``templates/report.md`` (every value escaped for Markdown by ``md_escape``). Numbers, ids and times are shown by
``core.fmt``.
"""
from __future__ import annotations

import getpass
import json
import os
import platform
import re
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterable, Mapping, Sequence

import jinja2
import jinja2.ext
from markupsafe import Markup

from .. import __version__
from ..core import fmt
from .campaigns import load_campaigns, split_inputs
from .fleet import TREND_LENGTH, Fleet, build_fleet, trend_text
from .history import TREND_LABELS, TREND_METRICS, History, build_history
from .model import DrillRecord, Problem, Scope, load_journals
from .svg import timeline_svg, trend_svg

__all__ = ["render_html", "render_markdown", "write_report", "write_review", "METRIC_LABELS", "md_escape"]

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
RESULT = {True: ("PASS", "pass"), False: ("FAIL", "fail"), None: ("n/a", "na")}
SIGNOFF = ("Reviewer name", "Role", "Date", "Signature", "Actions agreed for the issues found",
           "Follow-up owner and due date")
# Timelines are drawn for at most this many drills per page (those needing attention first, then the most recent);
# every drill keeps its facts, and its journal keeps the full timeline.
CHART_BUDGET = 100


# ------------------------------------------------------------------------------------------------ facts
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


def _objective_rows(rec: DrillRecord) -> list[SimpleNamespace]:
    return [SimpleNamespace(name=o.name, target=fmt.value(o.objective, o.unit), achieved=fmt.value(o.achieved, o.unit),
                            result=RESULT[o.passed][0], result_class=RESULT[o.passed][1]) for o in rec.objectives]


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
                     fmt.value(v, unit) if not isinstance(v, (dict, list)) or v else "n/a"))
    return rows


def _timeline_summary(rec: DrillRecord) -> str:
    s = rec.timeline
    if not s:
        return "no timeline samples"
    lags = [float(x["heartbeat_lag"]) for x in s if isinstance(x.get("heartbeat_lag"), (int, float))]
    io_states: list[str] = []
    for x in s:
        v = str(x["io"]) if x.get("io") is not None else "NULL"
        if not io_states or io_states[-1] != v:
            io_states.append(v)
    last = s[-1]
    text = f"{len(s)} samples"
    if rec.interval_seconds:
        text += f" every {fmt.seconds(rec.interval_seconds)}"
    text += f" over {fmt.seconds(s[-1]['t'] - s[0]['t'])}"
    if lags:
        text += f"; max heartbeat lag {fmt.seconds(max(lags))}"
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
        period = f"{fmt.utc_date(history.first)} to {fmt.utc_date(history.last)} (UTC)"
    try:
        who = f"{getpass.getuser()}@{platform.node()}"
    except Exception:  # noqa: BLE001 - no user name in some containers; the host is enough
        who = platform.node()
    return [
        ("generated", fmt.utc(history.generated_at)),
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
    return (f"{history.passed} of {history.judged} judged drill(s) passed ({fmt.pct(history.pass_rate)}); "
            f"{failed} not passed (of which {history.died} died); {len(history.not_started)} not started (not "
            f"counted); {len(history.excluded)} excluded (integrity)")


def chart_selection(records: Sequence[DrillRecord], budget: int = CHART_BUDGET) -> set[int]:
    """ids of the records whose timeline is drawn: drills needing attention first, then the most recent."""
    ranked = sorted(records, key=lambda r: (r.passed is True and r.trusted and r.integrity == "verified",
                                            -(r.started.timestamp() if r.started else 0.0)))
    return {id(r) for r in ranked[:budget]}


def _died_rows(rec: DrillRecord) -> list[tuple[str, str]]:
    died = rec.died or {}
    recover = died.get("recover")
    fired = rec.deadman_fired
    return [("detected by", fmt.value(died.get("detected_by"))), ("last step", fmt.value(died.get("last_step"))),
            ("last step at", fmt.value(died.get("last_step_at"))),
            ("fault injected", fmt.value(died.get("fault_injected"))),
            ("dead-man's switch", {True: "FIRED", False: "did not fire", None: "no record"}[fired]),
            ("recovered by", "n/a" if not isinstance(recover, dict) else
             ", ".join(f"{k} {fmt.value(v)}" for k, v in recover.items()) or "n/a")]


def _rto_text(rec: DrillRecord) -> str:
    obj = next((o for o in rec.objectives if o.name == "rto_seconds"), None)
    achieved = rec.metric("rto_seconds")
    if obj is None and achieved is None:
        return "n/a"
    return f"{fmt.seconds(achieved)} / {fmt.value(obj.objective, 's') if obj else 'n/a'}"


def _trend_rows(points) -> list[SimpleNamespace]:
    rows = []
    for metric in TREND_METRICS:
        vals = [(p.values.get(metric), p.objectives.get(metric)) for p in points]
        measured = [v for v, _ in vals if v is not None]
        rows.append(SimpleNamespace(
            label=TREND_LABELS[metric], measured=len(measured),
            latest=fmt.value(next((v for v, _ in reversed(vals) if v is not None), None), "s"),
            best=fmt.value(min(measured), "s") if measured else "n/a",
            worst=fmt.value(max(measured), "s") if measured else "n/a",
            objective=fmt.value(next((o for _, o in reversed(vals) if o is not None), None), "s"),
            over=sum(1 for v, o in vals if v is not None and o is not None and v > o)))
    return rows


def _chaos_status(rec: DrillRecord) -> str:
    return (rec.chaos_status or "n/a") + (" (deviated)" if rec.deviated else "")


def _rollbacks_run(rec: DrillRecord) -> str:
    return (f"{len(rec.rollbacks)} run" if rec.rollbacks else "none run") \
        + (" — forced by the drill control" if rec.rollbacks_forced else "")


def _rollbacks_line(rec: DrillRecord) -> str:
    return ", ".join(f"{r.name} {r.status or 'n/a'}" for r in rec.rollbacks) or "none run"


def _writes_line(rec: DrillRecord) -> str:
    w = rec.writes
    if not w.known:
        return "n/a: no write ledger"
    return (f"attempted {fmt.count(w.attempted)}, acknowledged {fmt.count(w.acknowledged)}, observed "
            f"{fmt.count(w.observed)}, lost {fmt.ids(w.lost)}, unexpected {fmt.ids(w.unexpected)}, "
            f"duplicated {fmt.ids(w.duplicated)}")


def _same_scope(rec: DrillRecord, previous: DrillRecord) -> bool:
    return previous.scope == rec.scope and rec.scope != Scope()


def _schedule_class(status: str) -> str:
    return "fail" if status.startswith("OVERDUE") else ("pass" if status == "on schedule" else "na")


# ------------------------------------------------------------------------------------------------ Markdown
# Inline specials (&, <, > become entities); "_" only where it could open or close emphasis (not in vpn_outage).
_MD_SPECIAL_RE = re.compile(r"([\\`*{}\[\]|~!$]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
# what would start a block at the start of a line: a marker (escaped), or an ordered-list number (its `.`/`)` is
# escaped: a backslash before a digit is not an escape in CommonMark and would show)
_MD_LINE_START_RE = re.compile(r"^(\s*)(?:([#+\-=>])|(\d+)([.)]))")
_MD_CODE_SAFE_RE = re.compile(r"^[A-Za-z0-9_.:/@+=,\- ]*$")


class MdText(str):
    """Markdown already escaped (``md_escape``'s output, or a code span of a plainly safe value): not escaped
    again. ``__html__`` is how jinja2's escaping step recognises text that is already escaped."""

    def __html__(self) -> str:
        return self


def md_escape(text: Any) -> MdText:
    """Text from a journal as inert Markdown: HTML escaped, every Markdown special backslash-escaped, line breaks
    and other control characters turned into spaces (a newline could start a heading, a list or a table row)."""
    if hasattr(text, "__html__"):  # MdText, or a macro's output (made of escaped values)
        return MdText(text)
    s = "" if text is None else str(text)
    s = re.sub(r"[\x00-\x1f\x7f\u2028\u2029\x85]+", " ", s)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _MD_SPECIAL_RE.sub(r"\\\1", s)
    return MdText(_MD_LINE_START_RE.sub(
        lambda m: m.group(1) + ("\\" + m.group(2) if m.group(2) else m.group(3) + "\\" + m.group(4)), s))


def md_code(text: Any) -> MdText:
    """A code span when the value is plainly safe in one (identifiers, paths, hashes); escaped text otherwise."""
    s = "" if text is None else str(text)
    if s and _MD_CODE_SAFE_RE.match(s):
        return MdText(f"`{s}`")
    return md_escape(s)


# ------------------------------------------------------------------------------------------------ templates
class _JoinLines(jinja2.ext.Extension):
    """HTML templates are written on indented lines for people; the page needs none of it (a thousand drills'
    indentation would be megabytes): a line break and the indentation after it are dropped at compile time."""

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        if not (name or "").endswith(".html"):
            return source
        return re.sub(r"\n[ \t]*", "", source) + ("\n" if source.endswith("\n") else "")


def _svg(text: str) -> Markup:
    # The only Markup in the review: svg.py writes every string it takes from a journal (run id, scenario, lane
    # and site names, state values, event names and labels, times) through html.escape, and numbers itself.
    return Markup(text)


_FILTERS = {
    "num": fmt.num, "seconds": fmt.seconds, "count": fmt.count, "pct": fmt.pct, "value": fmt.value, "ids": fmt.ids,
    "short_id": fmt.short_id, "utc": fmt.utc, "utc_short": fmt.utc_short, "utc_ms": fmt.utc_ms,
    "anchor": _anchor, "ran_from": _ran_from, "scope_rows": _scope_rows, "objective_rows": _objective_rows,
    "metric_rows": _metric_rows, "timeline_summary": _timeline_summary, "steady": _steady_text,
    "died_rows": _died_rows, "rto": _rto_text, "trend_rows": _trend_rows, "chaos_status": _chaos_status,
    "rollbacks_run": _rollbacks_run, "rollbacks_line": _rollbacks_line, "writes_line": _writes_line,
    "same_scope": _same_scope, "schedule_class": _schedule_class,
    "verdict_class": lambda rec: VERDICT_CLASS.get(rec.verdict or "", "na"),
    "integrity_class": lambda rec: INTEGRITY_CLASS.get(rec.integrity, "fail"),
    "trend_chart": lambda s: _svg(trend_svg(s.trend, f"Detection, recovery and catch-up times for {s.scenario}")),
    "join_text": lambda items, sep: sep.join(str(i) for i in items),
    "trend_text": trend_text, "pair_class": lambda row: "fail" if row.overdue else "pass",
    "state_class": lambda state: {"passed": "pass", "failed": "fail", "error": "fail"}.get(state or "", "warn"),
}
_TEMPLATES = Path(__file__).with_name("templates")
_envs: dict[str, jinja2.Environment] = {}


def _env(kind: str) -> jinja2.Environment:
    """``html``: autoescape on (jinja2 escapes every value; None shows as nothing). ``md``: the same escaping hook
    pointed at Markdown: ``finalize`` passes every value through ``md_escape``, whose output (and a macro's, made of
    escaped values) is marked as already escaped, so autoescape leaves it as it is."""
    env = _envs.get(kind)
    if env is None:
        loader = jinja2.FileSystemLoader(_TEMPLATES)
        if kind == "html":
            env = jinja2.Environment(loader=loader, keep_trailing_newline=True, undefined=jinja2.StrictUndefined,
                                     autoescape=jinja2.select_autoescape(["html"]), extensions=[_JoinLines],
                                     finalize=lambda v: "" if v is None else v)
        else:
            env = jinja2.Environment(loader=loader, keep_trailing_newline=True, undefined=jinja2.StrictUndefined,
                                     autoescape=True, finalize=md_escape, trim_blocks=True, lstrip_blocks=True)
            env.filters["code"] = md_code
        env.filters.update(_FILTERS)
        _envs[kind] = env
    return env


def _context(records: Sequence[DrillRecord], problems: Sequence[Problem], history: History, title: str,
             inputs: Sequence[str] | None, fleet: Fleet | None = None) -> dict[str, Any]:
    inputs_p, integrity_p = _problem_groups(problems)
    return dict(records=records, problems=problems, history=history, title=title, version=__version__,
                fleet=fleet if fleet is not None and fleet.shown else None, fleet_trend_length=TREND_LENGTH,
                header_facts=_header_facts(records, problems, history, inputs), findings=integrity_findings(problems),
                integrity_summary=integrity_summary(records, problems),
                outcome_summary=outcome_summary(records, history),
                not_passed=sum(1 for r in records if r.counted and r.passed is False),
                input_problems=inputs_p, integrity_problems=integrity_p, signoff=SIGNOFF, chart_budget=CHART_BUDGET)


def _by_start(records: Sequence[DrillRecord]) -> list[DrillRecord]:
    return sorted(records, key=lambda r: (r.started is None, -(r.started.timestamp() if r.started else 0)))


def render_html(records: Sequence[DrillRecord], problems: Sequence[Problem], history: History, *,
                title: str = "Disaster-recovery drill evidence", inputs: Sequence[str] | None = None,
                fleet: Fleet | None = None) -> str:
    """The whole review as one self-contained HTML document; with ``fleet`` (``fleet.build_fleet``) and when it
    is to be shown (several pairs, or campaigns), its Fleet and Campaigns sections too."""
    records = _by_start(records)
    charted = chart_selection(records)
    charts = {i: _svg(timeline_svg(r)) for i, r in enumerate(records) if id(r) in charted}
    return _env("html").get_template("report.html").render(
        charts=charts, **_context(records, problems, history, title, inputs, fleet))


def render_markdown(records: Sequence[DrillRecord], problems: Sequence[Problem], history: History, *,
                    title: str = "Disaster-recovery drill evidence", inputs: Sequence[str] | None = None,
                    fleet: Fleet | None = None) -> str:
    """The same facts as ``render_html``, as Markdown tables (no chart)."""
    context = _context(_by_start(records), problems, history, title, inputs, fleet)
    context["version"] = MdText(__version__)  # ours, not a journal's: "0.1.0" shown as it is
    return _env("md").get_template("report.md").render(**context)


# ------------------------------------------------------------------------------------------------ files
def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_review(records: Sequence[DrillRecord], problems: Sequence[Problem], history: History,
                 out_dir: str | os.PathLike[str], *, inputs: Sequence[str | os.PathLike[str]] | None = None,
                 basename: str = "drpoc-review", fleet: Fleet | None = None) -> tuple[Path, Path]:
    """Write already loaded records as ``<out_dir>/<basename>.html`` and ``.md`` (each atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    html_path, md_path = out / f"{basename}.html", out / f"{basename}.md"
    shown = [os.fspath(i) for i in inputs] if inputs is not None else None
    _atomic_write(html_path, render_html(records, problems, history, inputs=shown, fleet=fleet))
    _atomic_write(md_path, render_markdown(records, problems, history, inputs=shown, fleet=fleet))
    return html_path, md_path


def write_report(paths: Iterable[str | os.PathLike[str]], out_dir: str | os.PathLike[str], *,
                 expected_interval_days: Mapping[str, float | None] | None = None, public_key: Any = None,
                 now: datetime | None = None, basename: str = "drpoc-review",
                 ) -> tuple[Path, Path]:
    """Load the journals in ``paths``, build the history and write ``<out_dir>/<basename>.html`` and ``.md``.
    Returns both paths."""
    paths = [os.fspath(p) for p in paths]
    journal_paths, campaign_files = split_inputs(paths)
    records, problems = load_journals(journal_paths, public_key=public_key)
    campaigns, campaign_problems = load_campaigns(campaign_files)
    history = build_history(records, expected_interval_days, now)
    fleet = build_fleet(records, history, campaigns, campaign_files=len(campaign_files))
    return write_review(records, problems + campaign_problems, history, out_dir, inputs=paths, basename=basename,
                        fleet=fleet)


def report_json_summary(records: Sequence[DrillRecord], problems: Sequence[Problem], history: History) -> str:
    """A small machine-readable summary (for a Prefect artifact or CI), no secrets, no timeline."""
    return json.dumps({
        "generated": fmt.utc(history.generated_at), "drills": len(records), "judged": history.judged,
        "passed": history.passed, "overdue": [s.scenario for s in history.overdue],
        "problems": [str(p) for p in problems],
        "failed_runs": [r.run_id for r in records if r.passed is False],
    }, indent=2)

