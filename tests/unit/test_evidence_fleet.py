"""The fleet view (one row per replication pair) and campaign summaries in `drpoc review`: rows, trends, overdue,
blast-radius leaks, the Campaigns section in HTML / Markdown / JSON, escaping, redaction, damaged files, and that a
single-pair review is unchanged."""
from __future__ import annotations

import copy
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from drpoc_chaos.core.model import DrillResult
from drpoc_chaos.core.verdict import blast_radius_reasons
from drpoc_chaos.evidence.archive import archive_journal
from drpoc_chaos.evidence.campaigns import load_campaigns, read_campaign, split_inputs
from drpoc_chaos.evidence.cli import review_command
from drpoc_chaos.evidence.fleet import build_fleet
from drpoc_chaos.evidence.history import build_history
from drpoc_chaos.evidence.model import ONLY_PAIR, load_journals, normalise_journal
from drpoc_chaos.evidence.report import render_html, render_markdown

JOURNALS = Path(__file__).parent / "journals"
BASE = json.loads((JOURNALS / "drpoc1_vpn_outage_passed.json").read_text())
NOW = datetime.now(timezone.utc).replace(microsecond=0)
HOSTILE = "<script>alert(1)</script>"
SECRET = "Zq9hunter2Secret"


@pytest.fixture(autouse=True)
def _no_signing_env(monkeypatch):
    monkeypatch.delenv("DRPOC_SIGNING_KEY_FILE", raising=False)


def _z(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def journal(pair: str | None, days_ago: float, *, passed: bool = True, rto: float = 12.0, rpo: float = 0.0,
            run: str, inventory: str = "lab", leaks: list | None = None) -> dict:
    """The passed fixture, moved to another pair, time, outcome and figures."""
    j = copy.deepcopy(BASE)
    d = j["drpoc"]
    started = NOW - timedelta(days=days_ago)
    j["start"], j["end"] = _z(started)[:-1], _z(started + timedelta(seconds=60))[:-1]
    d["started"], d["ended"] = _z(started), _z(started + timedelta(seconds=60))
    d["run_id"] = run * 4
    if pair is not None:
        d["pair"] = pair
    d["scope"]["inventory"] = inventory
    d["metrics"]["rto_seconds"] = rto
    d["metrics"]["rpo_seconds"] = rpo
    for o in d["objective_results"]:
        if o["name"] == "rto_seconds":
            o["achieved"], o["passed"] = rto, rto <= o["objective"]
    if not passed:
        d["verdict"] = {"passed": False, "status": "failed", "reasons": [f"RTO {rto}s exceeds the objective 60s"]}
    if leaks is not None:
        d["blast_radius"] = {"ok": not leaks, "watched": ["onprem", "onprem2", "onprem3"], "skipped": {},
                             "leaks": leaks}
        if leaks and not passed:
            d["verdict"]["reasons"] += blast_radius_reasons(pair, leaks)
    return j


DRILLS = [  # (pair, days ago, passed, rto, rpo, run id prefix, leaks)
    ("onprem", 9.0, True, 10.0, 0.0, "aa000001", None),
    # a leak fails its drill (the control's verdict, and `verify`'s re-judgement of the journal)
    ("onprem", 5.0, False, 90.0, 2.5, "aa000002",
     [{"pair": "onprem2", "t": 7.5, "what": "tunnel down on onprem2-vpn"}]),
    ("onprem", 1.0, True, 14.0, 0.5, "aa000003", None),
    ("onprem2", 20.0, True, 11.0, 0.0, "bb000001", None),
    ("onprem3", 2.0, False, 95.0, 3.0, "cc000001",
     [{"pair": "onprem", "t": 3.0, "what": "replica lag on onprem"},
      {"pair": "onprem2", "t": 4.0, "what": "tunnel down on onprem2-vpn"}]),
    (HOSTILE, 3.0, True, 13.0, 0.0, "dd000001", None),
]


def campaign(cid: str, started: datetime, chosen: list[str], outcomes: list[dict], *, halted: bool = False,
             halt_reason: str | None = None, **extra) -> dict:
    data = {"schema": "drpoc-campaign/1", "campaign_id": cid, "flow_run_id": "6f1c8a52-0d3e-4a8e-9f0b-1c2d3e4f5a6b",
            "scenario": "experiments/vpn_outage.yaml", "inventory": "lab", "selection": f"count:{len(chosen)}",
            "max_parallel": 2, "started": _z(started), "finished": _z(started + timedelta(minutes=9)),
            "chosen": chosen, "halted": halted, "halt_reason": halt_reason, "outcomes": outcomes}
    data.update(extra)
    return data


def outcome(pair: str, order: int, state: str, run: str | None, **extra) -> dict:
    data = {"pair": pair, "order": order, "state": state, "run_id": run * 4 if run else None, "journal": None,
            "work_pool": "drpoc-a", "flow_run_id": None, "started": None, "finished": None, "reasons": []}
    data.update(extra)
    return data


@pytest.fixture
def archive(tmp_path) -> Path:
    arch = tmp_path / "journal"
    for pair, days, passed, rto, rpo, run, leaks in DRILLS:
        archive_journal(journal(pair, days, passed=passed, rto=rto, rpo=rpo, run=run, leaks=leaks), arch)
    camps = arch / "campaigns"
    camps.mkdir()
    halted = campaign("c1c1c1c1deadbeef", NOW - timedelta(days=5, minutes=1), ["onprem", "onprem3", HOSTILE], [
        outcome("onprem", 1, "failed", "aa000002", reasons=["RTO 90.0s exceeds the objective 60s"]),
        outcome("onprem3", 2, "not run: campaign halted", None),
        outcome(HOSTILE, 3, "not run: campaign halted", None)],
        halted=True, halt_reason=f"first pair failed; token={SECRET}", password=SECRET)
    complete = campaign("c2c2c2c2feedface", NOW - timedelta(days=1, minutes=1), ["onprem", "onprem2"], [
        outcome("onprem", 1, "passed", "aa000003"),
        outcome("onprem2", 2, "passed", "ee000009")])  # its journal is not in the archive
    (camps / "20990101T000000Z_c1c1c1c1.json").write_text(json.dumps(halted))
    (camps / "20990102T000000Z_c2c2c2c2.json").write_text(json.dumps(complete))
    return arch


def review(paths, out_dir, **kw):
    out = io.StringIO()
    code = review_command([str(p) for p in paths], str(out_dir), out=out, as_json=True, **kw)
    return code, json.loads(out.getvalue())


@pytest.fixture
def reviewed(archive, tmp_path):
    code, data = review([archive], tmp_path / "out", secrets=[SECRET])
    html = (tmp_path / "out" / "drpoc-review.html").read_text()
    md = (tmp_path / "out" / "drpoc-review.md").read_text()
    return code, data, html, md


# ------------------------------------------------------------------------------------------------ rows
def test_one_row_per_pair_with_last_drill_counts_trends_leaks_and_overdue(reviewed):
    code, data, _, _ = reviewed
    assert code == 0, data["problems"]
    fleet = data["fleet"]
    assert fleet["shown"] is True
    rows = {r["pair"]: r for r in fleet["pairs"]}
    assert sorted(rows) == sorted(["onprem", "onprem2", "onprem3", HOSTILE])
    assert all(r["inventory"] == "lab" and r["pair_recorded"] for r in rows.values())

    on = rows["onprem"]
    assert (on["passed"], on["judged"], on["drills"]) == (2, 3, 3)
    assert on["last"]["run_id"] == "aa000003" * 4 and on["last"]["verdict"] == "passed"
    assert on["last"]["scenario"] == "vpn_outage"
    assert on["rto_trend"] == [10.0, 90.0, 14.0] and on["rpo_trend"] == [0.0, 2.5, 0.5]
    assert on["leaks"] == 1 and on["leak_drills"] == 1 and on["leaks_suffered"] == 1
    assert on["overdue"] is False and on["schedule_status"] == "on schedule"

    two = rows["onprem2"]
    assert (two["passed"], two["judged"]) == (1, 1)
    assert two["overdue"] is True and two["schedule_status"].startswith("vpn_outage OVERDUE by 13.0 day")
    assert two["leaks"] == 0 and two["leaks_suffered"] == 2

    three = rows["onprem3"]
    assert (three["passed"], three["judged"]) == (0, 1) and three["last"]["verdict"] == "failed"
    assert three["overdue"] is True and three["schedule_status"] == "vpn_outage OVERDUE: never passed"
    assert three["leaks"] == 2 and three["rto_trend"] == [95.0]


def test_trend_keeps_the_last_eight_drills_oldest_first(tmp_path):
    arch = tmp_path / "journal"
    for i in range(11):
        archive_journal(journal("p1", 11 - i, rto=float(i), rpo=i / 10, run=f"{i:08x}"), arch)
    archive_journal(journal("p2", 1, run="ffff0000"), arch)
    records, _ = load_journals([arch])
    fleet = build_fleet(records, build_history(records))
    p1 = next(r for r in fleet.pairs if r.pair == "p1")
    assert p1.rto_trend == [float(i) for i in range(3, 11)]
    assert p1.rpo_trend == pytest.approx([i / 10 for i in range(3, 11)])
    assert p1.passed == 11 and p1.judged == 11


def test_pair_of_an_older_journal_comes_from_the_scope():
    j = copy.deepcopy(BASE)
    rec, _ = normalise_journal(j, "old.json")
    assert rec.pair == "onprem-db" and rec.pair_recorded is False  # host of scope.replica
    j["drpoc"]["scope"]["replica_site"] = "onprem"
    assert normalise_journal(j, "old.json")[0].pair == "onprem"
    del j["drpoc"]["scope"]["replica"], j["drpoc"]["scope"]["replica_site"]
    assert normalise_journal(j, "old.json")[0].pair == ONLY_PAIR
    j["drpoc"]["pair"] = 42  # wrong type: reads as missing, with a note
    rec, _ = normalise_journal(j, "old.json")
    assert rec.pair == ONLY_PAIR and any("drpoc.pair is a int" in w for w in rec.warnings)


def test_blast_radius_is_read_tolerantly():
    r = DrillResult.from_dict({"blast_radius": ["not", "an", "object"]})
    assert r.blast_radius == {} and r.problems == ["blast_radius is not an object"]
    br = {"ok": False, "watched": ["a"], "skipped": {"b": "down"}, "leaks": [{"pair": "a", "t": 1, "what": "x"}]}
    assert DrillResult.from_dict({"blast_radius": br}).to_dict()["blast_radius"] == br
    j = journal("p", 1, run="abcd0000", leaks=[{"pair": "q", "t": 2.0, "what": "tunnel down"}, "junk"])
    rec, _ = normalise_journal(j, "x.json")
    assert [lk.pair for lk in rec.blast_radius.leaks] == ["q"] and any("leaks" in w for w in rec.warnings)
    rec.issues = []
    from drpoc_chaos.evidence.model import derive_issues
    assert any("pair q was hurt at t=2s while pair p was drilled: tunnel down" in i for i in derive_issues(rec))


# ------------------------------------------------------------------------------------------------ campaigns
def test_campaigns_in_json(reviewed):
    _, data, _, _ = reviewed
    first, second = data["campaigns"]
    assert first["campaign_id"] == "c1c1c1c1deadbeef" and first["halted"] is True
    assert first["halt_reason"].startswith("first pair failed")
    assert first["chosen"] == ["onprem", "onprem3", HOSTILE] and first["max_parallel"] == 2
    assert first["selection"] == "count:3" and first["scenario"] == "experiments/vpn_outage.yaml"
    assert [o["state"] for o in first["outcomes"]] == ["failed", "not run: campaign halted",
                                                      "not run: campaign halted"]
    assert first["outcomes"][0]["drill"]["run_id"] == "aa000002" * 4
    assert first["outcomes"][0]["drill"]["verdict"] == "failed" and first["outcomes"][0]["notes"] == []
    assert first["outcomes"][1]["drill"] is None and first["counts"] == {"failed": 1, "not run: campaign halted": 2}
    assert second["halted"] is False
    assert second["outcomes"][0]["drill"]["run_id"] == "aa000003" * 4
    assert second["outcomes"][1]["drill"] is None
    assert second["outcomes"][1]["notes"] == ["its journal is not in this review"]
    # per drill, the pair it ran on
    assert {d["pair"] for d in data["drills"]} == {"onprem", "onprem2", "onprem3", HOSTILE}


def test_campaigns_and_fleet_in_markdown(reviewed):
    _, _, _, md = reviewed
    assert "## Fleet" in md and "## Campaigns" in md
    fleet = md.split("## Fleet", 1)[1].split("## Campaigns", 1)[0]
    row = next(line for line in fleet.splitlines() if line.startswith("| lab | onprem |"))
    assert "| `aa000003` | passed | 2 / 3 | 10 s → 90 s → 14 s | 0 s → 2.5 s → 0.5 s | 1 (suffered 1) | on schedule |" \
        in row
    assert "vpn\\_outage OVERDUE: never passed" in fleet or "vpn_outage OVERDUE: never passed" in fleet
    camps = md.split("## Campaigns", 1)[1].split("## History and schedule", 1)[0]
    assert "### Campaign `c1c1c1c1`" in camps and "### Campaign `c2c2c2c2`" in camps
    assert "| halted | yes: first pair failed" in camps and "| halted | no |" in camps
    assert "| chosen pairs, in order | onprem → onprem3 → &lt;script&gt;" in camps
    assert "| parallelism | 2 |" in camps and "| selection | count:3 |" in camps
    assert "| 1 | onprem | failed | `aa000002` | failed |" in camps
    assert "| 2 | onprem3 | not run: campaign halted | n/a | n/a |" in camps
    assert "its journal is not in this review" in camps


def test_campaigns_and_fleet_in_html_link_the_drills(reviewed):
    _, data, html, _ = reviewed
    assert '<section id="fleet">' in html and '<section id="campaigns">' in html
    assert '<a href="#fleet">Fleet</a>' in html
    camps = html.split('<section id="campaigns">', 1)[1].split("</section>", 1)[0]
    drills = {d["run_id"]: d for d in data["drills"]}
    assert "aa000002" * 4 in drills
    # the failed outcome links to its drill's anchor, and that anchor exists in the drill details
    anchors = [a for a in camps.split('href="#')[1:]]
    target = next(a.split('"', 1)[0] for a in anchors if a.startswith("run-aa000002"))
    assert f'id="{target}"' in html
    assert "halted" in camps and "first pair failed" in camps and "complete" in camps


def test_hostile_pair_names_are_escaped(reviewed):
    _, _, html, md = reviewed
    assert HOSTILE not in html and "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert HOSTILE not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md


def test_campaign_files_are_redacted(reviewed):
    _, data, html, md = reviewed
    assert SECRET not in html and SECRET not in md and SECRET not in json.dumps(data)
    assert "first pair failed" in html


def test_damaged_campaign_files_are_reported_not_raised(archive, tmp_path):
    camps = archive / "campaigns"
    (camps / "torn.json").write_text('{"schema": "drpoc-campaign/1", "campaign_id": "ab')
    (camps / "future.json").write_text(json.dumps({"schema": "drpoc-campaign/9", "campaign_id": "x"}))
    (camps / "list.json").write_text("[1, 2]")
    wrong = campaign("c3c3c3c3", NOW - timedelta(days=2), "onprem", "not a list", max_parallel="two",
                     halted="maybe")
    (camps / "wrong.json").write_text(json.dumps(wrong))
    code, data = review([archive], tmp_path / "out")
    assert code == 1
    by_file = {Path(p["source"]).name: p for p in data["problems"]}
    assert by_file["torn.json"]["kind"] == "input" and "corrupt campaign file" in by_file["torn.json"]["message"]
    assert by_file["future.json"]["kind"] == "schema" and "drpoc-campaign/9" in by_file["future.json"]["message"]
    assert "not a campaign file" in by_file["list.json"]["message"]
    msg = by_file["wrong.json"]["message"]
    assert "max_parallel is a str" in msg and "chosen is a str" in msg and "outcomes is a str" in msg
    assert "halted is a str" in msg
    ids = [c["campaign_id"] for c in data["campaigns"]]
    assert "c3c3c3c3" in ids and "x" not in ids  # wrong types read as missing; an unknown schema is not guessed
    c3 = next(c for c in data["campaigns"] if c["campaign_id"] == "c3c3c3c3")
    assert c3["max_parallel"] is None and c3["chosen"] == [] and c3["outcomes"] == [] and c3["halted"] is None
    html = (tmp_path / "out" / "drpoc-review.html").read_text()
    assert "max_parallel is a str" in html


def test_read_campaign_tolerates_bad_outcomes():
    data = campaign("c4", NOW, ["a", "b"], [outcome("a", 1, "exploded", None), "junk", {"order": "x"}])
    camp, problems = read_campaign(data, "c4.json")
    assert camp is not None and [o.pair for o in camp.outcomes] == ["a", None]
    text = problems[0].message
    assert "'exploded' is not one of" in text and "outcomes[1] is a str" in text and "outcomes[2] names no pair" in text
    assert "outcomes[2].order is a str" in text


def test_split_inputs_and_explicit_campaign_files(archive, tmp_path):
    files = sorted((archive / "campaigns").glob("*.json"))
    journals, camps = split_inputs([str(archive)])
    assert journals == [str(archive)] and camps == files
    loose = tmp_path / "c.json"
    loose.write_text((files[0]).read_text())
    journals, camps = split_inputs([str(loose), str(next(archive.glob("*.json")))])
    assert camps == [loose] and len(journals) == 1
    campaigns, problems = load_campaigns(camps)
    assert not problems and campaigns[0].campaign_id == "c1c1c1c1deadbeef"
    # a campaign passed by name with loose journals: the fleet is shown
    code, data = review([loose, *sorted(archive.glob("*.json"))[:1]], tmp_path / "o")
    assert data["fleet"]["shown"] is True and len(data["campaigns"]) == 1 and not data["problems"]


# ------------------------------------------------------------------------------------------------ one pair
@pytest.mark.parametrize("pair", [None, "onprem-db"])
def test_a_single_pair_review_has_no_fleet_section(tmp_path, pair):
    arch = tmp_path / "journal"
    archive_journal(journal(pair, 3, run="11110000"), arch)
    archive_journal(journal(pair, 1, run="22220000", passed=False, rto=80.0), arch)
    code, data = review([arch], tmp_path / "out")
    html = (tmp_path / "out" / "drpoc-review.html").read_text()
    md = (tmp_path / "out" / "drpoc-review.md").read_text()
    assert "Fleet" not in html and "Campaigns" not in html and "## Fleet" not in md and "Campaign" not in md
    assert data["fleet"]["shown"] is False and data["campaigns"] == []
    assert [r["pair"] for r in data["fleet"]["pairs"]] == ["onprem-db"]
    records, problems = load_journals([arch])
    history = build_history(records)
    fleet = build_fleet(records, history)
    assert render_html(records, problems, history, fleet=fleet) == render_html(records, problems, history)
    assert render_markdown(records, problems, history, fleet=fleet) == render_markdown(records, problems, history)


def test_older_journals_naming_no_pair_show_no_fleet(tmp_path):
    """The sample journals name no pair; one has no scope at all (two derived rows): the review stays as it was."""
    records, problems = load_journals([JOURNALS])
    history = build_history(records)
    fleet = build_fleet(records, history)
    assert len(fleet.pairs) == 2 and not any(p.pair_recorded for p in fleet.pairs) and not fleet.shown
    assert render_html(records, problems, history, fleet=fleet) == render_html(records, problems, history)
