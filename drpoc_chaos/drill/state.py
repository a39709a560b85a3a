"""The running drill, shared by the control and the activities of one `chaos run` (they run in one process).

Activities work without a drill too (a probe run on its own records nothing); when the drill control has started a
drill, writes and milestones are recorded here so the control can compute DR metrics and the verdict.
"""
from __future__ import annotations

import threading
import time
import uuid

from ..evidence.ledger import utc_now_iso  # noqa: F401 — one UTC format for journals and the ledger
from .metrics import Event, WriteRecord

_lock = threading.Lock()
_current: "Drill | None" = None




class Drill:
    def __init__(self, run_id: str | None = None):
        self.run_id = run_id or uuid.uuid4().hex
        self.tag = self.run_id[:8]
        self.t0 = time.monotonic()
        self.started = utc_now_iso()
        self.events: list[Event] = []
        self.writes: list[WriteRecord] = []
        self.fault_injected = False
        self.tunnel_restored = False
        self.extra_metrics: dict = {}  # scenario-specific figures, merged into the journal's metrics
        self._lock = threading.Lock()
        self._seq = 0

    def t(self) -> float:
        return time.monotonic() - self.t0

    def event(self, name: str, **detail) -> Event:
        e = Event(name=name, t=self.t(), at=utc_now_iso(), detail=detail)
        with self._lock:
            self.events.append(e)
        return e

    def has_event(self, name: str) -> bool:
        with self._lock:
            return any(e.name == name for e in self.events)

    def next_msg(self, phase: str) -> str:
        """A unique, short `msg` for testdb.ping (VARCHAR(50)): run tag, phase, sequence."""
        with self._lock:
            self._seq += 1
            return f"drpoc:{self.tag}:{phase[:12]}:{self._seq:06d}"

    def add_write(self, w: WriteRecord) -> None:
        with self._lock:
            self.writes.append(w)


def start(run_id: str | None = None) -> Drill:
    global _current
    with _lock:
        _current = Drill(run_id)
        return _current


def current() -> Drill | None:
    return _current


def finish() -> None:
    global _current
    with _lock:
        _current = None


def event(name: str, **detail) -> None:
    """Record a milestone on the running drill, if any."""
    d = _current
    if d is not None:
        d.event(name, **detail)
