"""Time, one way: UTC ISO 8601 timestamps for journals and the ledger, and the one bounded wait loop."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Callable, TypeVar

T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def utc_now_iso() -> str:
    """`2026-11-29T17:00:00.123456Z`: what every journal, intent and ledger line uses."""
    return utc_now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def wait_until(check: Callable[[], T], timeout: float, interval: float = 0.1,
               done: Callable[[T], bool] = bool, sleep: Callable[[float], None] = time.sleep,
               clock: Callable[[], float] = time.monotonic) -> tuple[bool, T]:
    """Call `check()` until `done(result)` or `timeout` seconds have passed (at least one call, even with timeout
    0). Returns (done, last result) — the caller decides what a timeout means. Never sleeps past the deadline."""
    deadline = clock() + max(0.0, timeout)
    while True:
        result = check()
        if done(result):
            return True, result
        left = deadline - clock()
        if left <= 0:
            return False, result
        sleep(min(interval, left))
