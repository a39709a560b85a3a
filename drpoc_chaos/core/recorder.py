"""The running drill, shared by the control and the services of one `chaos run` (they run in one process).

Services work without a drill too (a probe run on its own records nothing); when the drill control has started a
drill, writes and milestones are recorded here so the control can compute DR metrics and the verdict. The services
say what happened through the functions at the end of this module; they never import the drill control.
"""
from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from .clock import utc_now_iso
from .metrics import Event, WriteRecord

_lock = threading.Lock()
_current: "Drill | None" = None




class Drill:
    def __init__(self, run_id: str | None = None) -> None:
        self.run_id = run_id or uuid.uuid4().hex
        self.tag = self.run_id[:8]
        self.t0 = time.monotonic()
        self.started = utc_now_iso()
        self.events: list[Event] = []
        self.writes: list[WriteRecord] = []
        self.fault_injected = False
        self.tunnel_restored = False
        self.extra_metrics: dict[str, Any] = {}  # scenario-specific figures, merged into the journal's metrics
        self.parity: list[dict[str, Any]] = []  # each data-parity check of the drill (services/parity.py)
        # where a writer following the primary writes (a failover moves it): the role, and the label its writes
        # carry (core.failover: old, new, back)
        self.writer_target: tuple[str, str] = ("source", "old")
        self.undo_loss: Any = None  # a failover drill's way to bring its lost source back (the lab's), for restore
        self._lock = threading.Lock()
        self._seq = 0

    def t(self) -> float:
        return time.monotonic() - self.t0

    def event(self, name: str, **detail: Any) -> Event:
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


def event(name: str, **detail: Any) -> None:
    """Record a milestone on the running drill, if any."""
    d = _current
    if d is not None:
        d.event(name, **detail)


# --- what the services report (each a no-op without a running drill) -----------------------------------------

def fault_injected(**detail: Any) -> None:
    d = _current
    if d is not None:
        d.fault_injected = True
        d.event("fault_injected", **detail)


def recovery_started() -> None:
    d = _current
    if d is not None and not d.has_event("recovery_started"):
        d.event("recovery_started")


def tunnel_restored(already_up: bool, attempts: int = 0) -> None:
    d = _current
    if d is None:
        return
    d.tunnel_restored = True
    if not already_up:
        d.event("tunnel_up", attempts=attempts)


def replica_io_seen(io: str | None) -> None:
    """The replica's IO state as a wait saw it: the first non-Yes after the fault is the outage's detection."""
    d = _current
    if d is None or io is None:
        return
    if io != "Yes" and d.fault_injected and not d.has_event("outage_detected"):
        d.event("outage_detected", io=io)


def io_reconnected() -> None:
    d = _current
    if d is not None and d.tunnel_restored and not d.has_event("io_reconnected"):
        d.event("io_reconnected")


def caught_up(method: str) -> None:
    d = _current
    if d is not None and d.tunnel_restored and not d.has_event("caught_up"):
        d.event("caught_up", method=method)


def seconds_since(name: str) -> float | None:
    """Seconds since the running drill's first `name` event (None without a drill or such an event)."""
    d = _current
    if d is None:
        return None
    t = next((e.t for e in d.events if e.name == name), None)
    return None if t is None else d.t() - t


def move_writer(role: str, label: str) -> None:
    """A failover moved the primary: writers that follow it write to `role` from now on, labelled `label`."""
    d = _current
    if d is not None:
        d.writer_target = (role, label)
        d.event("writer_moved", to=role, label=label)


def writer_target() -> tuple[str, str]:
    d = _current
    return d.writer_target if d is not None else ("source", "old")


def metric(name: str, value: Any) -> None:
    """A scenario-specific figure for the journal's metrics (e.g. a failover's errant transaction count)."""
    d = _current
    if d is not None:
        d.extra_metrics[name] = value


def parity(result: dict[str, Any]) -> None:
    """A data-parity check ran: its verdict per table (keys of differing rows, counts; never row values)."""
    d = _current
    if d is None:
        return
    tables = [{k: t.get(k) for k in ("table", "status", "rows", "counts", "missing", "extra", "changed", "note")
               if t.get(k) is not None} for t in result.get("tables", [])]
    entry = {"t": round(d.t(), 3), "verdict": result.get("verdict"), "mode": result.get("mode"),
             "rows": result.get("rows"), "seconds": result.get("seconds"), "tables": tables}
    with d._lock:
        d.parity.append(entry)
    d.event("parity_checked", verdict=result.get("verdict"), tables=len(tables))
