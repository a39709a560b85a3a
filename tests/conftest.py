"""Shared fixtures. The `lab` fixture brings the real two-site lab up once per session and always tears it down."""
from __future__ import annotations

import os
import signal
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "tests", "fixtures")


def pytest_collection_modifyitems(config, items):
    """Tests that take the lab down (marked `lab_lifecycle`) run last, whatever their file or test names; every
    other test keeps its order (the sort is stable)."""
    items.sort(key=lambda item: item.get_closest_marker("lab_lifecycle") is not None)


def _can_run_lab() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root"
    return None


@pytest.fixture(scope="session")
def lab():
    """The real lab, up and healthy. Torn down at the end of the session even when tests fail (set
    DRPOC_KEEP_LAB=1 to keep it for debugging)."""
    reason = _can_run_lab()
    if reason:
        pytest.skip(reason)
    from drpoc_chaos.lab.lifecycle import Lab

    lab = Lab(progress=lambda m: print(m, file=sys.stderr))
    # SIGTERM from CI's time limit must still tear down: turn it into an exception pytest unwinds through.
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        result = lab.up()
        assert result["healthy"], result["problems"]
        yield lab
    finally:
        if not os.environ.get("DRPOC_KEEP_LAB"):
            lab.down(quiet=True)
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture
def healthy_lab(lab):
    """The lab, checked healthy again before the test (repairing it when an earlier test left a fault behind)."""
    import time
    deadline = time.monotonic() + 5
    while not lab.health()["healthy"]:
        if time.monotonic() > deadline:
            result = lab.up()  # an unhealthy lab is rebuilt (warm: data directories are kept)
            assert result["healthy"], result["problems"]
            break
        time.sleep(0.25)
    return lab
