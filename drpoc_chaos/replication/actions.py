"""Chaos Toolkit actions on the source and the replica (adapters over services.writer and services.replica): the
seed's `testdb.ping` writes, replica restarts, and bounded waits. Writes made during a drill are recorded in the
drill (attempted, acknowledged, id, GTID) so that it can prove afterwards that every acknowledged write arrived."""
from __future__ import annotations

import time
from typing import Any, Mapping

from ..activity import activity, number
from ..core import recorder
from ..core.clock import wait_until
from ..services import replica, writer
from ..services.context import inventory
from ..services.errors import StepFailed

__all__ = ["ensure_ping_table", "write_ping", "write_burst", "restart_replica", "set_replica_connect_retry",
           "restore_replica_connect_retry", "unstick_replica", "wait_for_replica", "wait_for_catch_up"]


@activity
def ensure_ping_table(configuration: Mapping | None = None, secrets: Mapping | None = None) -> dict[str, Any]:
    """Create `testdb.ping` on the source if it is missing, exactly as the seed does (it replicates to the
    replica). Returns {"created": bool}."""
    return writer.ensure_ping_table(inventory(configuration), secrets)


@activity
def write_ping(msg: str | None = None, phase: str = "manual", wait_visible_seconds: float = 0,
               configuration: Mapping | None = None, secrets: Mapping | None = None) -> dict[str, Any]:
    """Insert one row into `testdb.ping` on the source (the seed's `replication_test_…` rows).

    `msg` defaults to a unique tag of the running drill and `phase` ("before", "during", "after", …). Returns
    {"id", "msg", "committed_at", "gtid"}; with `wait_visible_seconds` > 0 also waits for the row on the replica and
    adds "visible_after" (seconds). The write is recorded in the drill's ledger when a drill runs.
    """
    wait = number("write_ping", "wait_visible_seconds", wait_visible_seconds, minimum=0)
    return writer.write_ping(inventory(configuration), msg, phase, wait, secrets)


@activity
def write_burst(count: int | None = None, duration: float | None = None, rate: float = 50.0, phase: str = "during",
                until_event: str | None = None, max_seconds: float = 600, target: str = "source",
                configuration: Mapping | None = None, secrets: Mapping | None = None) -> dict[str, Any]:
    """Steady writes to `testdb.ping` on the source (`target: primary` — wherever a failover drill has moved the
    primary, each write labelled old/new/back; `replica` — the replica): `count` rows, or for `duration` seconds,
    or until the running drill records `until_event` (e.g. "caught_up"), at `rate` rows per second — always bounded
    by `max_seconds`.

    Each write is its own autocommit transaction on a connection of its own (so it can run in the background while
    the tunnel is down). A failed write is counted as attempted, not acknowledged, and the burst reconnects and goes
    on. Returns {"attempted", "acknowledged", "errors", "first_error", "ids", "seconds", "achieved_rate"}.
    """
    if count is None and duration is None and until_event is None:
        raise StepFailed("write_burst: give count, duration or until_event")
    count = None if count is None else int(number("write_burst", "count", count, minimum=0, integer=True))
    duration = None if duration is None else number("write_burst", "duration", duration, minimum=0)
    rate = number("write_burst", "rate", rate)
    if rate <= 0:
        raise StepFailed("write_burst: rate must be positive")
    if target not in ("source", "replica", "primary"):
        raise StepFailed(f"write_burst: target must be source, replica or primary, not {str(target)[:40]!r}")
    return writer.write_burst(inventory(configuration), count, duration, rate, phase, until_event,
                              number("write_burst", "max_seconds", max_seconds, minimum=0), secrets, target=target)


@activity
def restart_replica(configuration: Mapping | None = None, secrets: Mapping | None = None) -> dict[str, Any]:
    """`STOP REPLICA; START REPLICA;` on the replica (`STOP SLAVE; START SLAVE;` on servers that predate the new
    words) — the seed's fix for a replica still `Connecting` after the VPN is back. Returns the status after."""
    return replica.restart(inventory(configuration), secrets)


# the connect retry a drill changed, to put back afterwards (per process: one drill runs per process)
_saved_connect_retry: dict[str, int | None] = {}


@activity
def set_replica_connect_retry(seconds: int, configuration: Mapping | None = None,
                              secrets: Mapping | None = None) -> dict[str, Any]:
    """Set the replica's connect retry interval (MASTER_CONNECT_RETRY / SOURCE_CONNECT_RETRY), restarting the
    replica threads around it. The previous value is remembered for `restore_replica_connect_retry`."""
    seconds = int(number("set_replica_connect_retry", "seconds", seconds, minimum=1, integer=True))
    inv = inventory(configuration)
    previous = replica.set_connect_retry(inv, seconds, secrets)
    _saved_connect_retry.setdefault(str(inv.path), previous)
    return {"previous": previous, "now": seconds}


@activity
def restore_replica_connect_retry(configuration: Mapping | None = None,
                                  secrets: Mapping | None = None) -> dict[str, Any]:
    """Put back the connect retry that `set_replica_connect_retry` replaced in this process (idempotent: does nothing
    when nothing was changed)."""
    inv = inventory(configuration)
    previous = _saved_connect_retry.pop(str(inv.path), None)
    if previous is None:
        return {"restored": False}
    replica.set_connect_retry(inv, previous, secrets)
    return {"restored": True, "connect_retry": previous}


@activity
def unstick_replica(observe_seconds: float = 3, timeout: float = 60, configuration: Mapping | None = None,
                    secrets: Mapping | None = None) -> dict[str, Any]:
    """With the tunnel back, show the replica still `Connecting` for `observe_seconds` (the symptom), then apply the
    seed's fix — STOP REPLICA; START REPLICA — and measure how fast it reconnects.

    Waiting instead would take until the IO thread's next attempt: at most connect_retry + net_timeout seconds after
    the tunnel's return (an attempt started just before then times out first), about half that on average.
    Returns the measured reconnect time and the time saved against both. Raises ActivityFailed when the replica
    reconnects by itself during the observation (connect retry too short to show the symptom) or not at all.
    """
    observe = number("unstick_replica", "observe_seconds", observe_seconds, minimum=0)
    timeout = number("unstick_replica", "timeout", timeout, minimum=0)
    inv = inventory(configuration)
    t_start = time.monotonic()
    reconnected, _ = wait_until(lambda: replica.read_status(inv, secrets), observe, 0.1,
                                done=lambda st: st is not None and st.io_running == "Yes")
    if reconnected:
        raise StepFailed(f"replica {inv.replica.host} reconnected by itself {time.monotonic() - t_start:.1f}s "
                         f"after the tunnel came back: raise stuck_connect_retry_seconds to show the symptom")
    settings = replica.read_settings(inv, secrets)
    retry, net_timeout = settings["connect_retry"], settings["net_timeout"]
    stuck_for = recorder.seconds_since("tunnel_up")
    stuck_for = observe if stuck_for is None else stuck_for
    replica.restart(inv, secrets)
    t_restart = time.monotonic()
    waited = replica.wait_for_io(inv, "Yes", timeout=timeout, secrets=secrets)
    reconnect = time.monotonic() - t_restart
    since_tunnel_up = stuck_for + reconnect
    worst = (retry or 0) + (net_timeout or 0)
    result = {"stuck_observed_seconds": round(stuck_for, 3), "connect_retry": retry, "net_timeout": net_timeout,
              "reconnect_after_restart_seconds": round(reconnect, 3),
              "reconnect_after_tunnel_up_seconds": round(since_tunnel_up, 3),
              "waiting_would_take_up_to_seconds": worst,
              "time_saved_up_to_seconds": round(max(0.0, worst - since_tunnel_up), 3),
              "time_saved_expected_seconds": round(max(0.0, worst / 2 - since_tunnel_up), 3),
              "io": waited["state"]}
    d = recorder.current()
    if d is not None:
        d.extra_metrics["stuck_replica"] = result
    return result


@activity
def wait_for_replica(state: str = "Yes", require_error: bool = False, timeout: float = 60,
                     interval: float = 0.1, configuration: Mapping | None = None,
                     secrets: Mapping | None = None) -> dict[str, Any]:
    """Poll the replica until its IO thread is in `state` ("Yes", "Connecting" or "No") — with `require_error`, until
    it also shows its connect error (Last_IO_Errno ≠ 0). Bounded by `timeout`.

    In a drill, reaching "Connecting"/"No" after the fault records `outage_detected`, and reaching "Yes" after the
    tunnel is back records `io_reconnected`. Returns {"state", "seconds", "last_io_errno", "last_io_error",
    "sql_running"}; raises ActivityFailed on timeout with the last status seen.
    """
    if state not in replica.IO_STATES:
        raise StepFailed(f"wait_for_replica: state must be one of {sorted(replica.IO_STATES)}")
    return replica.wait_for_io(inventory(configuration), state, require_error=require_error,
                               timeout=number("wait_for_replica", "timeout", timeout, minimum=0),
                               interval=number("wait_for_replica", "interval", interval, minimum=0.01),
                               secrets=secrets)


@activity
def wait_for_catch_up(timeout: float = 60, configuration: Mapping | None = None,
                      secrets: Mapping | None = None) -> dict[str, Any]:
    """Wait until the replica has applied everything the source had committed when this was called: the source's
    GTID position is read, then MASTER_GTID_WAIT (MariaDB) or WAIT_FOR_EXECUTED_GTID_SET (MySQL) blocks on the
    replica; without GTIDs, `testdb.ping` max id is polled instead. Records `caught_up` in a drill. Raises
    ActivityFailed past `timeout`."""
    return replica.catch_up(inventory(configuration), timeout=number("wait_for_catch_up", "timeout", timeout,
                                                                      minimum=0), secrets=secrets)

