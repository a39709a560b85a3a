"""The review on real journals recorded from lab drills (tests/fixtures/journals-lab/, whose provenance note says
how each was recorded)."""
from __future__ import annotations

from pathlib import Path

import pytest

from drpoc_chaos.evidence.model import load_journals
from drpoc_chaos.evidence.report import write_report

HERE = Path(__file__).resolve().parents[1] / "fixtures" / "journals-lab"
EXPECTED = {
    "passing": ("passed", True),
    "objective-missed": ("failed", False),
    "precondition-failed": ("precondition-failed", False),
    "interrupted": ("aborted", False),
    "deviated": ("failed", False),
}


@pytest.fixture(scope="module")
def records():
    recs, problems = load_journals([str(HERE)])
    assert problems == []
    return {Path(r.file).stem.replace("mariadb-10.11-lab-", ""): r for r in recs}


def test_every_real_journal_is_read_with_its_verdict(records):
    assert set(records) == set(EXPECTED)
    for name, (verdict, passed) in EXPECTED.items():
        r = records[name]
        assert r.is_drpoc and r.schema == "drpoc.journal/1"
        assert (r.verdict, r.passed) == (verdict, passed), name


def test_real_passing_drill_has_a_timeline_and_metrics(records):
    r = records["passing"]
    assert len(r.timeline) > 10
    assert {e.name for e in r.events} >= {"fault_injected", "outage_detected", "tunnel_up", "caught_up"}
    assert r.metric("detection_seconds") > 3 and r.metric("lost_writes") == 0


def test_report_from_real_journals(tmp_path, records):
    html, md = write_report([str(HERE)], str(tmp_path))
    text = Path(html).read_text()
    mdtext = Path(md).read_text()
    for name, (verdict, _) in EXPECTED.items():
        run8 = records[name].run_id[:8]
        assert run8 in text and run8 in mdtext
        assert verdict in mdtext
    assert "<svg" in text and "http://" not in text.replace("http://www.w3.org", "")
    assert "objective missed: RTO" in mdtext
    assert "no fault was injected" in mdtext
    assert "SIGTERM" in mdtext
    assert "steady state deviated after the method" in mdtext


def test_real_deviated_drill(records):
    r = records["deviated"]
    assert r.deviated is True and r.chaos_status == "failed"
    assert r.steady_after.met is False  # the recorded run deviated: its after-check failed
