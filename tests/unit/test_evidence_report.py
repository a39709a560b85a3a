"""History and the HTML / Markdown report: the facts an auditor needs, self-contained, escaped."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from drpoc_chaos.evidence.archive import archive_journal
from drpoc_chaos.evidence.history import build_history, parse_schedule
from drpoc_chaos.evidence.model import load_journals, normalise_journal
from drpoc_chaos.evidence.report import render_html, render_markdown, write_report
from drpoc_chaos.evidence.samples import make_journal
from drpoc_chaos.evidence.svg import timeline_svg, trend_svg

JOURNALS = Path(__file__).parent / "journals"
SAMPLES = ["drpoc1_vpn_outage_passed.json", "drpoc1_vpn_outage_deviated_lost_writes.json",
           "drpoc1_vpn_outage_precondition_failed.json", "drpoc1_vpn_outage_interrupted.json",
           "chaostoolkit_generic_no_drpoc.json", "corrupt.json", "truncated.json"]
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def _no_signing_env(monkeypatch):
    monkeypatch.delenv("DRPOC_SIGNING_KEY_FILE", raising=False)


@pytest.fixture(scope="module")
def loaded():
    records, problems = load_journals([JOURNALS / n for n in SAMPLES])
    return records, problems, build_history(records, now=NOW)


@pytest.fixture(scope="module")
def html(loaded):
    return render_html(*loaded, inputs=["tests/unit/journals"])


@pytest.fixture(scope="module")
def markdown(loaded):
    return render_markdown(*loaded, inputs=["tests/unit/journals"])


# ------------------------------------------------------------------------------------------------ history
def test_history_pass_rate_last_pass_and_overdue(loaded):
    records, _, history = loaded
    assert history.judged == 4 and history.passed == 1 and history.pass_rate == 0.25
    vpn = next(s for s in history.scenarios if s.scenario == "vpn_outage")
    assert vpn.drills == 4 and vpn.last_pass.run_id.startswith("2b0c1a2f")
    assert vpn.last_run.run_id.startswith("deadbeef")  # the interrupted one on 2026-11-22
    assert vpn.interval_days == 7 and vpn.due == datetime(2026, 11, 8, 17, 0, tzinfo=timezone.utc)
    assert vpn.overdue and vpn.overdue_days == pytest.approx(22.79, abs=0.01)
    assert vpn.schedule_status.startswith("OVERDUE by 22.8 day(s)")
    assert [s.scenario for s in history.overdue] == ["vpn_outage"]
    assert len(vpn.trend) == 4 and vpn.trend[0].objectives["rto_seconds"] == 60


def test_history_schedules_are_configurable():
    recs = [normalise_journal(make_journal("pass", seed=i, started=NOW - timedelta(days=d)), f"{i}.json")[0]
            for i, d in enumerate((20, 3))]
    on_time = build_history(recs, now=NOW)
    assert on_time.overdue == [] and on_time.scenarios[0].schedule_status == "on schedule"
    strict = build_history(recs, {"vpn_outage": 2, "failover": 30}, now=NOW)
    assert {s.scenario: s.schedule_status for s in strict.scenarios} == {
        "vpn_outage": "OVERDUE by 1.0 day(s)", "failover": "OVERDUE: never run"}
    assert build_history(recs, {"vpn_outage": None}, now=NOW).scenarios[0].schedule_status == "no schedule"
    assert parse_schedule(["vpn_outage=14", "old=none"]) == {"vpn_outage": 14.0, "old": None}
    for bad in ("vpn_outage", "x=abc", "x=-1"):
        with pytest.raises(ValueError):
            parse_schedule([bad])


# ------------------------------------------------------------------------------------------------ HTML
def test_html_is_self_contained(html):
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    lowered = html.lower()
    for forbidden in ("<script", "http://", "https://", "src=", "@import", "url(", "<link", "@font-face"):
        assert forbidden not in lowered, forbidden
    assert all(h.startswith("#") for h in re.findall(r'href="([^"]*)"', html))
    assert "<style>" in html and "<svg" in html


def test_html_has_the_audit_facts(html):
    for fact in (
        # per drill: id, times, where from, scenario, scope
        "2b0c1a2f9e8d4c7ba1f0e2d3c4b5a697", "2026-11-01 17:00:00 UTC", "drpoc@drill-runner-1", "vpn_outage",
        "gateway aws-vpn", "subnet 192.168.64.0/24", "onprem-aws", "aws-db 127.0.0.1:33061",
        "onprem-db 127.0.0.1:33062",
        # objectives vs achieved, verdicts, reasons, issues
        "Objectives vs achieved", "rto_seconds", "max_lost_writes", "PASS", "FAIL", "precondition-failed",
        "aborted", "3 acknowledged writes lost (ids 41, 42, 43)", "steady state not met before the fault",
        # steady state, rollbacks, writes, integrity
        "steady state before", "ensure-replica-running", "41, 42, 43", "no ledger",
        # history, problems, sign-off
        "History and schedule", "OVERDUE by 22.8 day(s)", "Trend: vpn_outage", "truncated JSON", "corrupt JSON",
        "Sign-off", "Reviewer name", "Signature", "Actions agreed",
    ):
        assert fact in html, fact
    assert html.count('<svg class="timeline"') == 4  # every drpoc drill with samples; not the generic journal
    assert html.count('<svg class="trend"') == 1
    assert "No timeline samples in this journal" in html


def test_timeline_chart_content(loaded):
    rec = next(r for r in loaded[0] if r.run_id.startswith("2b0c1a2f"))
    svg = timeline_svg(rec)
    for lane in ("aws tunnel (aws-vpn)", "onprem tunnel (onprem-vpn)", "replica IO thread", "replica SQL thread"):
        assert lane in svg
    for series in ("heartbeat_lag", "seconds_behind", "source_rows", "replica_rows"):
        assert f'data-series="{series}"' in svg
    for event in ("fault_injected", "outage_detected", "recovery_started", "tunnel_up", "io_reconnected",
                  "caught_up"):
        assert f'data-event="{event}"' in svg
    assert ">Connecting<" in svg and ">down<" in svg
    # NULL Seconds_Behind_Source breaks the line instead of drawing a false zero.
    d = re.search(r'data-series="seconds_behind" d="([^"]+)"', svg).group(1)
    assert d.count("M") >= 2


def test_trend_chart_marks_failed_drills(loaded):
    _, _, history = loaded
    vpn = next(s for s in history.scenarios if s.scenario == "vpn_outage")
    svg = trend_svg(vpn.trend, "t")
    assert svg.count('class="series"') == 3 and svg.count('class="objective"') == 3
    assert 'fill="#c62828"><title>7f3e9d1c' in svg
    assert trend_svg([], "t").startswith("<p")


def test_untrusted_text_is_escaped(tmp_path):
    j = make_journal("pass", seed=3)
    j["drpoc"]["title"] = "<script>alert(1)</script>"
    j["drpoc"]["verdict"]["reasons"] = ["<img src=x onerror=alert(1)> | pipe"]
    j["drpoc"]["scope"]["source"] = "db&<b>"
    (tmp_path / "x.json").write_text(json.dumps(j))
    records, problems = load_journals([tmp_path / "x.json"])
    history = build_history(records, now=NOW)
    html = render_html(records, problems, history)
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "db&amp;&lt;b&gt;" in html
    md = render_markdown(records, problems, history)
    assert "<img" not in md and "&lt;img src=x onerror=alert(1)&gt; \\| pipe" in md


# ------------------------------------------------------------------------------------------------ Markdown
def test_markdown_twin_has_the_same_facts(html, markdown):
    assert "<svg" not in markdown
    for fact in ("2b0c1a2f9e8d4c7ba1f0e2d3c4b5a697", "2026-11-01 17:00:00 UTC", "drpoc@drill-runner-1",
                 "gateway aws-vpn", "onprem-db 127.0.0.1:33062", "| `rto_seconds` | 60 s |", "FAIL",
                 "precondition-failed", "3 acknowledged writes lost (ids 41, 42, 43)", "ensure-replica-running",
                 "OVERDUE by 22.8 day(s)", "truncated JSON", "corrupt JSON", "## Sign-off", "Reviewer name",
                 "| Date |", "no ledger", "fault", "caught up", "## History and schedule", "### Trend: vpn_outage"):
        assert fact in markdown, fact
    # Every table row has the same number of cells as its header (an unescaped | from a journal would add one).
    lines = markdown.splitlines()
    seps = [i for i, line in enumerate(lines) if line.startswith("|---")]
    assert seps
    for i in seps:
        width = len(re.findall(r"(?<!\\)\|", lines[i - 1]))
        assert lines[i].count("|") == width
        j = i + 1
        while j < len(lines) and lines[j].startswith("|"):
            assert len(re.findall(r"(?<!\\)\|", lines[j])) == width, lines[j]
            j += 1


def test_write_report_from_an_archive(tmp_path):
    archive = tmp_path / "journal"
    for i, kind in enumerate(("pass", "deviated", "pass")):
        archive_journal(make_journal(kind, seed=i, started=NOW - timedelta(days=10 - 3 * i)), archive)
    html_path, md_path = write_report([archive], tmp_path / "out", expected_interval_days={"vpn_outage": 30},
                                      now=NOW)
    assert html_path == tmp_path / "out" / "drpoc-review.html" and md_path.suffix == ".md"
    html = html_path.read_text()
    assert html.count(">verified<") >= 6  # badge in the summary and in each drill
    assert "every archive read verified against its ledger" in html
    assert "on schedule" in html and "2 of 3 judged drill(s) passed (67%)" in html
    assert "2 of 3 judged drill(s) passed (67%)" in md_path.read_text()
    assert not list((tmp_path / "out").glob(".*tmp*"))


# ------------------------------------------------------------------------------------------------ templates
EVIL = '<x-evil a="1">\n# head | `tick` *em* [link](javascript:x) _u_'


def _evil_journal() -> dict:
    j = make_journal("deviated", seed=5)
    d = j["drpoc"]
    d["scenario"] = d["title"] = EVIL
    d["run_id"] = "ab<x-evil>cdef"
    d["verdict"]["reasons"] = [EVIL, "second " + EVIL]
    for k in ("inventory", "connection", "source", "replica"):
        d["scope"][k] = EVIL
    d["scope"]["gateways"] = {"aws": EVIL, EVIL: "x"}
    d["events"][0]["name"] = EVIL
    d["metrics"][EVIL] = EVIL
    d["timeline"]["samples"][0]["io"] = EVIL
    j["rollbacks"][0]["activity"]["name"] = EVIL
    j["rollbacks"][0]["status"] = EVIL
    return j


def test_every_journal_string_is_escaped_wherever_it_is_shown(tmp_path):
    (tmp_path / "evil.json").write_text(json.dumps(_evil_journal()))
    records, problems = load_journals([tmp_path / "evil.json"])
    history = build_history(records, now=NOW)
    html = render_html(records, problems, history)
    md = render_markdown(records, problems, history)
    assert "<x-evil" not in html and "<x-evil" not in md
    # escaped in text, in attributes and in the SVG (the timeline of this drill is drawn)
    assert html.count("&lt;x-evil a=") >= 10 and "<svg" in html
    assert 'aria-label="Timeline of drill ab&lt;x-evil&gt;cdef' in html
    # Markdown: no line a journal wrote starts a heading or breaks a table row; every pipe from it is escaped
    assert not [line for line in md.splitlines() if line.startswith("# head")]
    assert "\\| \\`tick\\` \\*em\\* \\[link\\](javascript:x) \\_u\\_" in md
    for line in md.splitlines():
        if line.startswith("| ") and "x-evil" in line:
            cells = re.split(r"(?<!\\)\|", line)
            assert all("head" not in c or "\\`tick\\`" in c for c in cells)


def test_markup_only_for_the_svg_charts():
    """jinja2 escapes every value; the charts are the only Markup, made in one place after svg.py escaped them."""
    import drpoc_chaos.evidence.report as report
    src = Path(report.__file__).read_text()
    assert src.count("Markup(") == 1 and "def _svg(" in src
    templates = Path(report.__file__).with_name("templates")
    for t in templates.iterdir():
        text = t.read_text()
        assert "|safe" not in text.replace(" ", "") and "Markup" not in text.split("-#}", 1)[-1], t.name
    env = report._env("html")
    assert env.autoescape("report.html") is True
    tpl = env.from_string("{{ x }}")
    assert tpl.render(x="<b>&'\"") == "&lt;b&gt;&amp;&#39;&#34;"


@pytest.mark.parametrize("text, escaped", [
    ("vpn_outage", "vpn_outage"), ("_x_", "\\_x\\_"), ("a|b\n# c", "a\\|b # c"), ("# c", "\\# c"),
    ("12. item", "12\\. item"), ("0.5 s", "0\\.5 s"), ("<b>&", "&lt;b&gt;&amp;"),
    ("`x` *y* [z](u) ~!$", "\\`x\\` \\*y\\* \\[z\\](u) \\~\\!\\$"),
    (None, ""), (3, "3"),
])
def test_markdown_escape_filter(text, escaped):
    from drpoc_chaos.evidence.report import md_escape
    assert md_escape(text) == escaped


def test_markdown_code_spans_only_for_plainly_safe_values():
    from drpoc_chaos.evidence.report import md_code
    assert md_code("/srv/journal/x_1.json") == "`/srv/journal/x_1.json`"
    assert md_code("a`b") == "a\\`b" and md_code("") == ""


def test_markdown_and_html_use_the_same_short_run_id(html, markdown):
    # the last passing drill: 8 characters in both (the Markdown showed 12 before)
    assert "<code>2b0c1a2f</code>" in html
    assert re.search(r"\| \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC 2b0c1a2f \|", markdown)
