"""The experiment files and the extension as Chaos Toolkit sees them (no lab needed)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHAOS = [str(Path(sys.executable).parent / "chaos"), "--no-version-check", "--no-log-file"]
EXPERIMENTS = sorted((REPO / "experiments").glob("*.yaml"))


def test_the_five_experiments_are_there():
    assert {p.stem for p in EXPERIMENTS} == {"vpn_outage", "vpn_one_sided_recovery", "replica_stuck_connecting",
                                             "vpn_outage_under_load", "site_failover"}


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_chaos_validate_passes(path):
    r = subprocess.run(CHAOS + ["validate", str(path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_bound_to_the_drill_control_and_self_documented(path):
    text = path.read_text()
    exp = yaml.safe_load(text)
    assert {"name": "drpoc-drill", "provider": {"type": "python", "module": "drpoc_chaos.drill.control"}} \
        in exp["controls"]
    assert exp["configuration"]["scenario"] == path.stem
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    seed = yaml.safe_load((REPO / "experiments" / "vpn_outage.yaml").read_text())["configuration"]
    inherited = set(seed) if "as vpn_outage.yaml" in header else set()
    for key in exp["configuration"]:
        assert f"#   {key} " in header or key in inherited, f"{key} is not documented at the top of {path.name}"
    # the rollback restores only what this drill broke
    assert any(r["provider"]["func"] == "recover_tunnel" and r["provider"]["arguments"]["only_if_fault_injected"]
               for r in exp["rollbacks"])


def test_discover_lists_every_activity_with_arguments(tmp_path):
    out = tmp_path / "discovery.json"
    r = subprocess.run(CHAOS + ["discover", "--no-install", "--discovery-path", str(out), "drpoc-chaos"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    found = {a["name"]: a for a in json.loads(out.read_text())["activities"]}
    import importlib

    import drpoc_chaos
    expected = set()
    for module, kind in drpoc_chaos.ACTIVITY_MODULES:
        for name in importlib.import_module(module).__all__:
            expected.add(name)
            assert found[name]["type"] == kind and found[name]["mod"] == module
    assert expected == set(found)
    assert {a["name"] for a in found["write_burst"]["arguments"]} >= {"count", "duration", "rate", "until_event"}
    assert found["tunnel_established"]["doc"]
