"""`{secret: NAME}` passwords through `chaos run`, against the lab's databases: the seed experiment's steady state
(its shipped providers and their `secrets: [drpoc]` scopes, unchanged) with the password declared as a Chaos Toolkit
env secret in the experiment's `drpoc` scope. The value never reaches the journal."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from drpoc_chaos.lab.topology import Paths
from drpoc_chaos.scheduling import steady_state_experiment

from .support import variant

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]
CHAOS = [str(Path(sys.executable).parent / "chaos"), "--no-version-check", "--no-log-file"]


def run_steady_state(tmp_path: Path, declare: bool, env: dict) -> tuple[subprocess.CompletedProcess, dict]:
    cfg = variant(tmp_path, "secret-ref", lambda d: d["mysql_defaults"].update(password={"secret": "mysql_password"}))
    exp = steady_state_experiment(yaml.safe_load((REPO / "experiments" / "vpn_outage.yaml").read_text()))
    exp["configuration"]["inventory"] = cfg["inventory"]
    if declare:
        exp["secrets"]["drpoc"]["mysql_password"] = {"type": "env", "key": "DRPOC_LAB_MYSQL_PASSWORD"}
    path, journal = tmp_path / "steady.json", tmp_path / "journal.json"
    path.write_text(json.dumps(exp))
    r = subprocess.run(CHAOS + ["run", "--journal-path", str(journal), str(path)], capture_output=True, text=True,
                       timeout=180, cwd=tmp_path, env=env)
    return r, json.loads(journal.read_text()) if journal.exists() else {}


def test_env_secret_in_the_experiments_scope_reaches_every_database_probe(ready, tmp_path):
    password = (Paths().secrets / "mysql_password").read_text().strip()
    env = dict(os.environ, DRPOC_LAB_MYSQL_PASSWORD=password)
    r, journal = run_steady_state(tmp_path, declare=True, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    probes = journal["steady_states"]["before"]["probes"]
    assert journal["steady_states"]["before"]["steady_state_met"] is True
    assert {p["activity"]["name"] for p in probes} >= {"replica-io-and-sql-threads-running",
                                                        "replication-lag-within-bound"}
    assert password not in json.dumps(journal)


def test_undeclared_secret_fails_the_steady_state_with_what_to_declare(ready, tmp_path):
    r, journal = run_steady_state(tmp_path, declare=False, env=dict(os.environ))
    assert r.returncode == 1
    failed = [p for p in journal["steady_states"]["before"]["probes"] if p["status"] == "failed"]
    assert failed and "Chaos Toolkit secret 'mysql_password' not found" in json.dumps(failed)
