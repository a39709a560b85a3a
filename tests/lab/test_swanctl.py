"""The lab in swanctl mode (`drpoc lab up --ipsec swanctl`): charon without starter or stroke, swanctl.conf over
vici, the child named apart from the connection — a strongSwan 6 style gateway. Every experiment passes on it,
driven by a hand-written inventory whose sites are called `cloud` and `dc1` and whose gateways say `control: auto`
(detected as swanctl and recorded in the journal); the dead-man's switch and `drpoc recover` bring a swanctl tunnel
back. The default (ipsec) lab runs the same experiments in test_drills.py; the module restores it when done."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from drpoc_chaos.lab.topology import CONNECTION, SWANCTL_CHILD, LabSettings

from .support import INVENTORY, recover_twice, renamed_inventory
from .test_drills import DRPOC, assert_no_write_lost, assert_passing_drill, chaos_cmd, on, run_drill

pytestmark = pytest.mark.lab
EXPERIMENTS = ["vpn_outage", "vpn_outage_under_load", "vpn_one_sided_recovery", "replica_stuck_connecting"]


@pytest.fixture(scope="module")
def swanctl_lab(lab):
    result = lab.up(LabSettings(ipsec="swanctl"))
    assert result["healthy"], result["problems"]
    try:
        yield lab
    finally:
        # back to the default lab for the modules after this one
        lab.up()


@pytest.fixture
def sw(swanctl_lab):
    deadline = time.monotonic() + 10
    while not swanctl_lab.health()["healthy"]:
        assert time.monotonic() < deadline, swanctl_lab.health()["problems"]
        time.sleep(0.25)
    return swanctl_lab


def swanctl_up_both() -> bool:
    return all(f"{SWANCTL_CHILD}: #" in on(h, "swanctl", "--list-sas", check=False).stdout
               and "INSTALLED" in on(h, "swanctl", "--list-sas", check=False).stdout for h in ("aws-vpn", "onprem-vpn"))


def test_the_lab_runs_swanctl_mode(sw):
    status = json.loads(subprocess.run(DRPOC + ["lab", "status", "--json"], capture_output=True, text=True,
                                       timeout=60).stdout)
    assert status["ipsec_mode"] == "swanctl" and status["healthy"]
    assert all(t["control"] == "swanctl" for t in status["tunnels"].values())
    for host in ("aws-vpn", "onprem-vpn"):
        # no stroke: the seed's `ipsec` commands cannot drive this gateway, as on strongSwan 6
        stroke = on(host, "ipsec", "statusall", check=False)
        assert stroke.returncode != 0 and "charon.ctl" in stroke.stdout + stroke.stderr
        conns = on(host, "swanctl", "--list-conns").stdout
        assert conns.startswith(f"{CONNECTION}: IKEv2") and f"  {SWANCTL_CHILD}: TUNNEL" in conns
    inv = yaml.safe_load(Path(INVENTORY).read_text())
    assert {s["gateway"]["control"] for s in inv["sites"].values()} == {"swanctl"}
    assert {s["gateway"]["child"] for s in inv["sites"].values()} == {SWANCTL_CHILD}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_passes_with_other_site_names_and_auto_control(sw, tmp_path, monkeypatch, experiment):
    monkeypatch.setenv("DRPOC_INVENTORY", str(renamed_inventory(tmp_path)))
    r, journal = run_drill(tmp_path, experiment)
    d = assert_passing_drill(r, journal, tmp_path)
    gateways = d["roles"]["gateways"]
    assert set(gateways) == {"cloud", "dc1"} and d["roles"]["fault_site"] == "cloud"
    assert all(g["configured"] == "auto" and g["control"] == "swanctl" for g in gateways.values())
    assert "gateway_control_detected" in [e["name"] for e in d["events"]]
    commands = [x["output"]["step"]["command"] for x in journal["run"]
                if isinstance(x.get("output"), dict) and isinstance(x["output"].get("step"), dict)]
    assert f"swanctl --terminate --ike {CONNECTION}" in commands
    assert not [c for c in commands if c.startswith("ipsec ")]
    if experiment == "vpn_one_sided_recovery":
        runs = {x["activity"]["name"]: x for x in journal["run"]}
        one = runs["one-sided-tunnel-up-on-fault-side-only"]["output"]
        assert one["established"] is False
        assert one["step"]["command"] == f"swanctl --initiate --child {SWANCTL_CHILD} --ike {CONNECTION}"
        assert runs["recover-tunnel-in-seed-order"]["output"]["states"] == {"cloud": "up", "dc1": "up"}
    assert_no_write_lost()


def _wait_fault(timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while swanctl_up_both():
        assert time.monotonic() < deadline, "the drill never took the tunnel down"
        time.sleep(0.2)
    return time.monotonic()


def test_dead_mans_switch_restores_a_swanctl_tunnel_and_recover_accounts_for_it(sw, tmp_path):
    """The orchestrator dies during the outage: the switch on the gateway brings the tunnel back with swanctl alone
    (there is no stroke to fall back on), and `drpoc recover` archives the drill as died."""
    max_outage = 15
    proc = subprocess.Popen(chaos_cmd("vpn_outage", tmp_path / "j.json", "outage_seconds:float=120",
                                      f"max_outage_seconds:float={max_outage}", "feasibility=warn"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
                            env=dict(os.environ, DRPOC_ARCHIVE_DIR=str(tmp_path / "archive")))
    try:
        fault_at = _wait_fault()
        time.sleep(2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    deadline = fault_at + max_outage + 20
    while not swanctl_up_both():
        assert time.monotonic() < deadline, "the dead-man's switch did not bring the swanctl tunnel back"
        time.sleep(0.5)
    print(f"swanctl tunnel back {time.monotonic() - fault_at:.1f}s after the fault", file=sys.stderr)
    records = on("aws-vpn", "sh", "-c", "cat /run/drpoc-deadman.d/*", check=False).stdout
    assert "fired " in records and "restored " in records, records
    for out in recover_twice(tmp_path / "archive"):
        assert "already up" in out, out
    assert_no_write_lost()


def test_recover_brings_a_terminated_swanctl_tunnel_back(sw, tmp_path):
    on("aws-vpn", "swanctl", "--terminate", "--ike", CONNECTION, "--timeout", "10")
    assert not swanctl_up_both()
    r = subprocess.run(DRPOC + ["recover", "--archive-dir", str(tmp_path / "archive")], capture_output=True,
                       text=True, timeout=150)
    assert r.returncode == 0, r.stdout + r.stderr
    assert swanctl_up_both()


def test_site_failover_on_swanctl_gateways_with_other_site_names(sw, tmp_path, monkeypatch):
    """The failover drill where the seed's `ipsec` commands do not exist, on an inventory naming its sites `cloud`
    and `dc1`: lost, promoted, reconciled and switched back, every tunnel step through swanctl."""
    monkeypatch.setenv("DRPOC_INVENTORY", str(renamed_inventory(tmp_path)))
    r, journal = run_drill(tmp_path, "site_failover", "loss=crash")
    d = journal["drpoc"]
    assert r.returncode == 0 and d["verdict"]["passed"] is True, (d["verdict"], d["safety"]["notes"])
    assert d["roles"]["fault_site"] == "cloud" and d["roles"]["failover"]["returned_to"] == d["roles"]["source"]
    assert all(g["control"] == "swanctl" for g in d["roles"]["gateways"].values())
    runs = {x["activity"]["name"]: x for x in journal["run"]}
    down = runs["lose-the-fault-site"]["output"]["tunnel"]["step"]["command"]
    assert down == f"swanctl --terminate --ike {CONNECTION}"
    assert "switched_back" in [e["name"] for e in d["events"]]
    assert d["metrics"]["failover"]["switchover_window_seconds"] <= 1.0
