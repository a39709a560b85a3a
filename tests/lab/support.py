"""What the lab test modules share: the lab inventory, waiting out a running drill, inventory variants."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

INVENTORY = "/var/lib/drpoc-lab/inventory.yaml"
CFG = {"inventory": INVENTORY}
LOCK = "/run/drpoc-drill.lock"


def drill_running() -> bool:
    r = subprocess.run([sys.executable, "-m", "drpoc_chaos.cli", "lab", "exec", "aws-vpn", "--", "test", "-d", LOCK],
                       capture_output=True, text=True, timeout=30)
    return r.returncode == 0


def wait_no_drill(timeout: float = 120) -> None:
    """A drill (another process) holds the lab: wait for it, bounded, rather than disturb it."""
    deadline = time.monotonic() + timeout
    while drill_running():
        if time.monotonic() > deadline:
            pytest.skip(f"a drill held {LOCK} on aws-vpn for {timeout:g}s: not disturbing it")
        time.sleep(1)


def variant(tmp_path: Path, name: str, mutate) -> dict:
    """A copy of the lab inventory, changed by `mutate(data)`, as a configuration."""
    data = yaml.safe_load(Path(INVENTORY).read_text())
    mutate(data)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return {"inventory": str(path)}


def renamed_inventory(tmp_path: Path) -> Path:
    """The lab's inventory as an operator might write it: sites `cloud` and `dc1`, `control` left to auto."""
    data = yaml.safe_load(Path(INVENTORY).read_text())
    data["sites"] = {"cloud": data["sites"]["aws"], "dc1": data["sites"]["onprem"]}
    for site in data["sites"].values():
        site["gateway"].pop("control", None)
    data["drill"].update(fault_site="cloud", peer_site="dc1")
    data["name"] = "hand-written"
    path = tmp_path / "cloud-dc1.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def recover_twice(archive: Path) -> list[str]:
    """`drpoc recover` twice on `archive`: both succeed, the first archives the drill that died, the second finds
    nothing left to do (it is safe to re-run). Returns both outputs."""
    outputs = []
    for i in range(2):
        r = subprocess.run([sys.executable, "-m", "drpoc_chaos.cli", "recover", "--archive-dir", str(archive)],
                           capture_output=True, text=True, timeout=150)
        assert r.returncode == 0, r.stdout + r.stderr
        assert ("had died: archived as" in r.stdout) == (i == 0), r.stdout
        outputs.append(r.stdout)
    return outputs
