"""A fleet lab (`drpoc lab up --sites 3`): a drill of one spoke's pair leaves the other spokes untouched and says
so in its journal; a drill that knocks another pair over fails, naming the pair it hit."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from drpoc_chaos.lab.topology import LabSettings

REPO = Path(__file__).resolve().parents[2]
CHAOS = str(Path(sys.executable).parent / "chaos")
DRPOC = str(Path(sys.executable).parent / "drpoc")


@pytest.fixture(scope="module")
def fleet_lab(lab):
    result = lab.up(LabSettings(sites=3))
    assert result["healthy"], result["problems"]
    try:
        yield lab
    finally:
        lab.up()


def _drill(pair: str, archive: Path, *extra: str) -> dict:
    p = subprocess.run([CHAOS, "run", str(REPO / "experiments" / "vpn_outage.yaml"), "--var", f"pair={pair}",
                        "--var", f"archive_dir={archive}", *extra], capture_output=True, text=True, timeout=300,
                       cwd=archive.parent)
    journals = [f for f in archive.glob("*_vpn_outage_*.json") if not f.name.endswith(".intent.json")]
    assert len(journals) == 1, p.stdout[-3000:] + p.stderr[-3000:]
    return json.loads(journals[0].read_text())["drpoc"]


def _lab(host: str, *cmd: str) -> None:
    subprocess.run([DRPOC, "lab", "exec", host, "--", *cmd], capture_output=True, timeout=60)


def test_spokes_left_on_disk_under_a_reset_source_are_rebuilt(lab):
    """A spoke's replica kept on disk while the two-site lab went on (a failover drill re-seeds the source: RESET
    MASTER) cannot resume from its position: `lab up --sites 3` sees it (error 1236) and rebuilds every database."""
    assert lab.up(LabSettings(sites=3))["healthy"]
    assert lab.up()["healthy"]                       # onprem2/onprem3 stay on disk
    lab.sql("aws-db", "RESET MASTER; INSERT INTO testdb.ping (msg) VALUES ('after-reset');")
    said: list[str] = []
    from drpoc_chaos.lab.lifecycle import Lab
    result = Lab(lab.paths, progress=said.append).up(LabSettings(sites=3))
    assert result["healthy"], (result["problems"], said)
    assert any("replication cannot resume" in m for m in said), said


def test_the_fleet_lab_is_a_hub_and_three_spokes(fleet_lab):
    st = fleet_lab.status()
    assert st["sites"] == 3 and st["healthy"], st["problems"]
    assert set(st["replicas"]) == {"onprem-db", "onprem2-db", "onprem3-db"}
    assert {"aws-vpn onprem-aws", "aws-vpn onprem2-aws", "aws-vpn onprem3-aws", "onprem2-vpn"} <= set(st["tunnels"])
    from drpoc_chaos.inventory import load_fleet
    fleet = load_fleet(fleet_lab.paths.inventory)
    assert fleet.version == 2 and list(fleet.pairs) == ["onprem", "onprem2", "onprem3"]
    p2 = fleet.pairs["onprem2"]
    assert p2.gateway("aws").remote_subnet == "192.168.65.0/24" and p2.drill.fault_site == "onprem2"


def test_a_drill_on_one_spoke_leaves_the_others_untouched(fleet_lab, tmp_path):
    d = _drill("onprem2", tmp_path / "journal")
    assert d["verdict"]["passed"], d["verdict"]
    br = d["blast_radius"]
    assert d["pair"] == "onprem2" and br["ok"] and br["leaks"] == []
    assert sorted(br["watched"]) == ["onprem", "onprem3"] and br["rounds"] >= 3
    # the fault really hit onprem2 only: its replica lost the source, the others never did
    assert any(s.get("io") != "Yes" for s in d["timeline"]["samples"])


def test_a_drill_that_hits_another_pair_fails_naming_it(fleet_lab, tmp_path):
    """While onprem2 is drilled, onprem3's tunnel goes down too (as a hub-wide mistake would take it): the drill
    fails and its journal names onprem3."""
    def hit():
        time.sleep(3.0)  # inside the outage hold
        _lab("onprem3-vpn", "ipsec", "down", "onprem3-aws")

    t = threading.Thread(target=hit)
    t.start()
    try:
        d = _drill("onprem2", tmp_path / "journal")
    finally:
        t.join()
        _lab("onprem3-vpn", "ipsec", "up", "onprem3-aws")
        deadline = time.monotonic() + 60
        while not fleet_lab.health()["healthy"] and time.monotonic() < deadline:
            time.sleep(1)
    assert not d["verdict"]["passed"]
    assert [leak["pair"] for leak in d["blast_radius"]["leaks"]] == ["onprem3"]
    assert "tunnel" in d["blast_radius"]["leaks"][0]["what"]
    assert any("hit pair onprem3" in r for r in d["verdict"]["reasons"]), d["verdict"]["reasons"]
    assert any(e["name"] == "blast_radius_leak" for e in d["events"])
    # `drpoc verify` judges the journal again from its facts and agrees
    from drpoc_chaos.core.verdict import facts_from_journal, judge
    assert not judge(facts_from_journal({"drpoc": d, "status": "failed"})).passed


def test_the_campaign_health_probe_excuses_a_pair_only_under_its_own_drill(fleet_lab):
    """A campaign halts when a pair not under its drills is unhealthy, unless a drill of that very pair, started
    outside the campaign, holds the pair's gateway lock: that outage is the other drill's, and its verdict's."""
    from drpoc_chaos.drill import safety
    from drpoc_chaos.inventory import load_fleet
    from drpoc_chaos.scheduling.campaign import fleet_health
    from drpoc_chaos.services import context
    from drpoc_chaos.services.gateway import helper
    fleet = load_fleet(fleet_lab.paths.inventory)
    gw = helper(fleet.pairs["onprem2"], "onprem2")
    _lab("onprem2-vpn", "ipsec", "down", "onprem2-aws")
    try:
        sick = fleet_health(fleet, ["onprem2", "onprem3"])
        assert list(sick) == ["onprem2"] and any("tunnel" in p for p in sick["onprem2"]), sick
        assert safety.acquire_lock(gw, "outside-run", 600, "vpn_outage@onprem3")["state"] == "acquired"
        assert list(fleet_health(fleet, ["onprem2", "onprem3"])) == ["onprem2"]  # another pair's label: no excuse
        assert safety.release_lock(gw, "outside-run")
        assert safety.acquire_lock(gw, "outside-run", 600, "vpn_outage@onprem2")["state"] == "acquired"
        seen: dict[str, str] = {}
        assert fleet_health(fleet, ["onprem2", "onprem3"], under_drill=seen) == {}
        assert seen == {"onprem2": "outside-run"}
    finally:
        safety.release_lock(gw, "outside-run")
        context.close_all()
        _lab("onprem2-vpn", "ipsec", "up", "onprem2-aws")
        deadline = time.monotonic() + 60
        while not fleet_lab.health()["healthy"] and time.monotonic() < deadline:
            time.sleep(1)
    assert fleet_health(fleet, ["onprem", "onprem2", "onprem3"]) == {}


def test_recover_on_a_fleet_goes_through_every_pair(fleet_lab, tmp_path):
    p = subprocess.run([DRPOC, "recover", "--json", "--archive-dir", str(tmp_path / "journal")],
                       capture_output=True, text=True, timeout=300)
    out = json.loads(p.stdout)
    assert p.returncode == 0 and out["ok"], p.stderr[-2000:]
    assert list(out["pairs"]) == ["onprem", "onprem2", "onprem3"]
    assert all(r["ok"] and r["pair"] == name for name, r in out["pairs"].items())
    one = json.loads(subprocess.run([DRPOC, "recover", "--json", "--pair", "onprem3", "--archive-dir",
                                     str(tmp_path / "journal")], capture_output=True, text=True,
                                    timeout=300).stdout)
    assert one["ok"] and one["pair"] == "onprem3" and "pairs" not in one


def test_a_failover_of_a_shared_source_is_refused_and_touches_nothing(fleet_lab, tmp_path):
    """The hub's source feeds every spoke: losing it for one pair would take every pair's source. Refused before
    anything is touched, and every later step of the drill refuses too."""
    archive = tmp_path / "journal"
    subprocess.run([CHAOS, "run", str(REPO / "experiments" / "site_failover.yaml"), "--var", "pair=onprem3",
                    "--var", f"archive_dir={archive}"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    (journal,) = [f for f in archive.glob("*_site_failover_*.json") if not f.name.endswith(".intent.json")]
    d = json.loads(journal.read_text())["drpoc"]
    assert not d["verdict"]["passed"] and "fault_injected" not in [e["name"] for e in d["events"]]
    assert any("also the source of pairs onprem, onprem2" in r for r in d["verdict"]["reasons"]), d["verdict"]
    assert d["blast_radius"]["ok"] and d["blast_radius"]["leaks"] == []
    st = fleet_lab.status()
    assert st["healthy"], st["problems"]


def test_a_one_pair_inventory_has_no_blast_radius(lab, tmp_path):
    """The seed's two-site lab (v1 inventory): nothing else to watch, the journal has no pair and no watch."""
    lab.up()
    d = _drill("", tmp_path / "journal")
    assert d["verdict"]["passed"] and d.get("pair") is None and not d.get("blast_radius")
