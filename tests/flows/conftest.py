"""Fixtures of the Prefect tests: one `prefect_test_harness` per session (offline, PREFECT_HOME in a tmp dir), and
a shared lab that is waited for — not repaired — while another engineer's drill or lab test runs on it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DRPOC = [str(Path(sys.executable).parent / "drpoc")]

# before Prefect is imported by any test module of this folder
_PREFECT_HOME = tempfile.mkdtemp(prefix="drpoc-prefect-home-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.pop("PREFECT_API_URL", None)
if str(REPO / "flows") not in sys.path:
    sys.path.insert(0, str(REPO / "flows"))


@pytest.fixture(scope="session")
def prefect_harness():
    import prefect.settings as ps
    from prefect.testing.utilities import prefect_test_harness

    with ps.temporary_settings(updates={ps.PREFECT_HOME: _PREFECT_HOME,
                                        ps.PREFECT_SERVER_ANALYTICS_ENABLED: False}):
        with prefect_test_harness(server_startup_timeout=180):
            yield


@pytest.fixture
def prefect_client(prefect_harness):
    from prefect import get_client
    with get_client(sync_client=True) as client:
        yield client


# ---------------------------------------------------------------------------------------------- the shared lab

def lab_status() -> dict:
    p = subprocess.run(DRPOC + ["lab", "status", "--json"], capture_output=True, text=True, timeout=60)
    try:
        return json.loads(p.stdout)
    except ValueError:
        return {"up": False, "healthy": False, "problems": [p.stderr.strip()[-300:]]}


def wait_lab_healthy(timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    st = lab_status()
    while not st.get("healthy") and time.monotonic() < deadline:
        time.sleep(2)
        st = lab_status()
    return st


def wait_lab_idle(timeout: float = 180) -> bool:
    """Healthy and no drill lock on the AWS gateway (another engineer's drill on the shared lab): wait, bounded."""
    from drpoc_chaos.scheduling import drill_lock_hint
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if wait_lab_healthy(min(30.0, max(1.0, deadline - time.monotonic()))).get("healthy") \
                and not drill_lock_hint():
            return True
        time.sleep(3)
    return False


@pytest.fixture
def lab_for_flows(request):
    """The lab, healthy. When it is up but busy (another drill in progress on the shared lab) wait for it — up to
    3 minutes — before handing over to the `healthy_lab` fixture, which would otherwise repair it under the other
    drill."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    st = lab_status()
    if st.get("up"):
        wait_lab_idle(180)
    return request.getfixturevalue("healthy_lab")


def lab_exec(host: str, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(DRPOC + ["lab", "exec", host, "--", *cmd], capture_output=True, text=True,
                          timeout=timeout)


def restore_tunnel_seed_order() -> dict:
    """The seed's stable recovery order, then a bounded wait (30 s) for the lab to report healthy."""
    for host, verb in (("aws-vpn", "down"), ("onprem-vpn", "down"), ("onprem-vpn", "up"), ("aws-vpn", "up")):
        lab_exec(host, "ipsec", verb, "onprem-aws", timeout=60)
    return wait_lab_healthy(30)


# On the shared lab another engineer's drill or lab test may hold the drill lock or have the tunnel down when ours
# starts: our drill then refuses to start, or finds the steady state unmet and injects nothing. Both are safe to
# retry (no fault was injected); the lock is never removed.
LOCK_HELD = "another drill holds the drill lock"
NOT_STARTED = (LOCK_HELD, "steady state not met before the method")
LOCK_HINT = "holds the drill lock"


def run_with_lock_retry(fn, *, attempts: int = 3, pause: float = 30.0):
    """Run a drill flow; when it could not start because the shared lab was busy, wait and retry."""
    state = None
    for i in range(attempts):
        wait_lab_idle()
        state = fn()
        if not any(t in str(state.message or "") for t in NOT_STARTED) or i == attempts - 1:
            return state
        time.sleep(pause)
    return state


def check_when_idle(fn, attempts: int = 3):
    """Run a steady-state check when no other drill runs; when one started meanwhile (the check's hint says so),
    wait and run it again."""
    state = None
    for i in range(attempts):
        wait_lab_idle()
        state = fn()
        if LOCK_HINT not in str(state.message or "") or i == attempts - 1:
            return state
    return state
