"""Actions on the source and the replica: the seed's `testdb.ping` writes, replica restarts, and bounded waits.

Writes made during a drill are recorded in the drill's ledger (attempted, acknowledged, id, GTID) so that the drill
can prove afterwards that every acknowledged write reached the replica.
"""
from __future__ import annotations

import time
from typing import Any, Mapping

import pymysql
from chaoslib.exceptions import ActivityFailed

from .. import db
from ..activity import activity, inventory, logger, sql
from ..drill import state as drill
from ..drill.metrics import WriteRecord
from .probes import PING_TABLE, dialect_of, read_replica_status

__all__ = ["ensure_ping_table", "write_ping", "write_burst", "restart_replica", "set_replica_connect_retry",
           "restore_replica_connect_retry", "unstick_replica", "wait_for_replica", "wait_for_catch_up"]

MSG_MAX = 50  # the seed's msg VARCHAR(50)


@activity
def ensure_ping_table(configuration: Mapping | None = None, secrets: Mapping | None = None) -> dict[str, Any]:
    """Create `testdb.ping` on the source if it is missing, exactly as the seed does (it replicates to the
    replica). Returns {"created": bool}."""
    inv = inventory(configuration)
    existed = sql(inv.source, inv, "SELECT COUNT(*) AS n FROM information_schema.tables "
                                   "WHERE table_schema='testdb' AND table_name='ping'", secrets=secrets)[0]["n"]
    sql(inv.source, inv, "CREATE DATABASE IF NOT EXISTS testdb", secrets=secrets)
    sql(inv.source, inv, "CREATE TABLE IF NOT EXISTS testdb.ping (id INT AUTO_INCREMENT PRIMARY KEY, "
                         "msg VARCHAR(50), created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)", secrets=secrets)
    return {"created": not existed}


def _check_msg(msg: str) -> str:
    if not isinstance(msg, str) or not msg:
        raise ActivityFailed("write_ping: msg must be a non-empty string")
    if len(msg) > MSG_MAX:
        raise ActivityFailed(f"write_ping: msg is {len(msg)} characters; testdb.ping.msg holds {MSG_MAX}")
    return msg


def _insert(conn, msg: str, dialect) -> tuple[int, str | None]:
    with conn.cursor() as cur:
        # always a bound parameter: msg comes from experiment files and may hold anything
        cur.execute(f"INSERT INTO {PING_TABLE} (msg) VALUES (%s)", (msg,))
        row_id = cur.lastrowid
        cur.execute(dialect.last_gtid)
        gtid = (cur.fetchone() or {}).get("gtid")
    return row_id, gtid


@activity
def write_ping(msg: str | None = None, phase: str = "manual", wait_visible_seconds: float = 0,
               configuration: Mapping | None = None, secrets: Mapping | None = None) -> dict[str, Any]:
    """Insert one row into `testdb.ping` on the source (the seed's `replication_test_…` rows).

    `msg` defaults to a unique tag of the running drill and `phase` ("before", "during", "after", …). Returns
    {"id", "msg", "committed_at", "gtid"}; with `wait_visible_seconds` > 0 also waits for the row on the replica and
    adds "visible_after" (seconds). The write is recorded in the drill's ledger when a drill runs.
    """
    inv = inventory(configuration)
    d = drill.current()
    if msg is None:
        msg = d.next_msg(phase) if d else f"drpoc:{phase}:{time.time():.3f}"
    msg = _check_msg(msg)
    record = WriteRecord(msg=msg, phase=phase, attempted_t=d.t() if d else 0.0)
    if d:
        d.add_write(record)
    from ..activity import db_pool
    conn = db_pool().get(inv.source, inv, secrets)
    dialect = dialect_of(inv.source, inv, secrets)
    try:
        row_id, gtid = _insert(conn, msg, dialect)
    except pymysql.MySQLError as exc:
        record.error = str(exc)[:200]
        raise db.db_error(exc, inv.source, "INSERT") from None
    record.id, record.gtid = row_id, gtid
    record.acked_t = d.t() if d else 0.0
    out: dict[str, Any] = {"id": row_id, "msg": msg, "gtid": gtid,
                           "committed_at": drill.utc_now_iso()}
    if wait_visible_seconds > 0:
        t0 = time.monotonic()
        deadline = t0 + wait_visible_seconds
        while True:
            rows = sql(inv.replica, inv, f"SELECT id FROM {PING_TABLE} WHERE id=%s AND msg=%s", (row_id, msg),
                       secrets=secrets)
            if rows:
                out["visible_after"] = round(time.monotonic() - t0, 3)
                if d:
                    record.visible_t = d.t()
                break
            if time.monotonic() >= deadline:
                raise ActivityFailed(f"row {row_id} ({msg}) not on the replica {inv.replica.host} after "
                                     f"{wait_visible_seconds:g}s: is replication running? (SHOW REPLICA STATUS)")
            time.sleep(0.01)
    return out


@activity
def write_burst(count: int | None = None, duration: float | None = None, rate: float = 50.0, phase: str = "during",
                until_event: str | None = None, max_seconds: float = 600,
                configuration: Mapping | None = None, secrets: Mapping | None = None) -> dict[str, Any]:
    """Steady writes to `testdb.ping` on the source: `count` rows, or for `duration` seconds, or until the running
    drill records `until_event` (e.g. "caught_up"), at `rate` rows per second — always bounded by `max_seconds`.

    Each write is its own autocommit transaction on a connection of its own (so it can run in the background while
    the tunnel is down). A failed write is counted as attempted, not acknowledged, and the burst reconnects and goes
    on. Returns {"attempted", "acknowledged", "errors", "first_error", "ids", "seconds", "achieved_rate"}.
    """
    if count is None and duration is None and until_event is None:
        raise ActivityFailed("write_burst: give count, duration or until_event")
    if rate <= 0:
        raise ActivityFailed("write_burst: rate must be positive")
    inv = inventory(configuration)
    d = drill.current()
    dialect = dialect_of(inv.source, inv, secrets, pool=db.DbPool())
    conn = None
    ids: list[int] = []
    errors = 0
    first_error = None
    attempted = 0
    started = time.monotonic()
    limit = min(max_seconds, duration) if duration is not None else max_seconds
    try:
        while True:
            elapsed = time.monotonic() - started
            if count is not None and attempted >= count:
                break
            if elapsed >= limit:
                break
            if until_event and d is not None and d.has_event(until_event):
                break
            # pace against the schedule, not the previous write: the rate holds even when a write was slow
            due = started + attempted / rate
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
            msg = d.next_msg(phase) if d else f"drpoc:burst:{attempted:06d}"
            record = WriteRecord(msg=msg, phase=phase, attempted_t=d.t() if d else 0.0)
            if d:
                d.add_write(record)
            attempted += 1
            try:
                if conn is None:
                    conn = db.connect(inv.source, inv, secrets)
                row_id, gtid = _insert(conn, msg, dialect)
                record.id, record.gtid, record.acked_t = row_id, gtid, (d.t() if d else 0.0)
                ids.append(row_id)
            except (pymysql.MySQLError, db.DbError) as exc:
                errors += 1
                record.error = str(exc)[:200]
                first_error = first_error or str(exc)[:200]
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # already broken
                        pass
                conn = None
    finally:
        if conn is not None:
            conn.close()
    seconds = time.monotonic() - started
    return {"attempted": attempted, "acknowledged": len(ids), "errors": errors, "first_error": first_error,
            "ids": ids, "seconds": round(seconds, 3),
            "achieved_rate": round(len(ids) / seconds, 1) if seconds > 0 else None}


@activity
def restart_replica(configuration: Mapping | None = None, secrets: Mapping | None = None) -> dict[str, Any]:
    """`STOP REPLICA; START REPLICA;` on the replica (`STOP SLAVE; START SLAVE;` on servers that predate the new
    words) — the seed's fix for a replica still `Connecting` after the VPN is back. Returns the status after."""
    inv = inventory(configuration)
    dialect = dialect_of(inv.replica, inv, secrets)
    sql(inv.replica, inv, dialect.stop, secrets=secrets)
    sql(inv.replica, inv, dialect.start, secrets=secrets)
    drill.event("replica_restarted")
    st = read_replica_status(inv, secrets)
    return {"statements": [dialect.stop, dialect.start], "io": st.io_running if st else None,
            "sql": st.sql_running if st else None}


# the connect retry a drill changed, to put back afterwards (per process: one drill runs per process)
_saved_connect_retry: dict[str, int] = {}


@activity
def set_replica_connect_retry(seconds: int, configuration: Mapping | None = None,
                              secrets: Mapping | None = None) -> dict[str, Any]:
    """Set the replica's connect retry interval (MASTER_CONNECT_RETRY / SOURCE_CONNECT_RETRY), restarting the
    replica threads around it. The previous value is remembered for `restore_replica_connect_retry`."""
    try:
        seconds = int(seconds)
    except (TypeError, ValueError):
        raise ActivityFailed(f"set_replica_connect_retry: seconds must be an integer, not {seconds!r}") from None
    if seconds < 1:
        raise ActivityFailed("set_replica_connect_retry: seconds must be at least 1")
    inv = inventory(configuration)
    dialect = dialect_of(inv.replica, inv, secrets)
    before = read_replica_status(inv, secrets)
    if before is None:
        raise ActivityFailed(f"{inv.replica.host}: replication is not configured; nothing to change")
    _saved_connect_retry.setdefault(str(inv.path), before.connect_retry)
    sql(inv.replica, inv, dialect.stop, secrets=secrets)
    try:
        sql(inv.replica, inv, dialect.set_connect_retry(int(seconds)), secrets=secrets)
    finally:
        sql(inv.replica, inv, dialect.start, secrets=secrets)
    return {"previous": before.connect_retry, "now": int(seconds)}


@activity
def restore_replica_connect_retry(configuration: Mapping | None = None,
                                  secrets: Mapping | None = None) -> dict[str, Any]:
    """Put back the connect retry that `set_replica_connect_retry` replaced in this process (idempotent: does nothing
    when nothing was changed)."""
    inv = inventory(configuration)
    previous = _saved_connect_retry.pop(str(inv.path), None)
    if previous is None:
        return {"restored": False}
    dialect = dialect_of(inv.replica, inv, secrets)
    sql(inv.replica, inv, dialect.stop, secrets=secrets)
    try:
        sql(inv.replica, inv, dialect.set_connect_retry(previous), secrets=secrets)
    finally:
        sql(inv.replica, inv, dialect.start, secrets=secrets)
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
    inv = inventory(configuration)
    d = drill.current()
    t_start = time.monotonic()
    while time.monotonic() - t_start < float(observe_seconds):
        st = read_replica_status(inv, secrets)
        if st is not None and st.io_running == "Yes":
            raise ActivityFailed(f"replica {inv.replica.host} reconnected by itself {time.monotonic() - t_start:.1f}s "
                                 f"after the tunnel came back: raise stuck_connect_retry_seconds to show the symptom")
        time.sleep(0.1)
    st = read_replica_status(inv, secrets)
    retry = st.connect_retry if st else None
    net_timeout = int(sql(inv.replica, inv, "SELECT @@GLOBAL.slave_net_timeout AS t", secrets=secrets)[0]["t"])
    tunnel_up_t = next((e.t for e in d.events if e.name == "tunnel_up"), None) if d else None
    stuck_for = (d.t() - tunnel_up_t) if d and tunnel_up_t is not None else float(observe_seconds)
    restart_replica(configuration=configuration, secrets=secrets)
    t_restart = time.monotonic()
    waited = wait_for_replica("Yes", timeout=timeout, configuration=configuration, secrets=secrets)
    reconnect = time.monotonic() - t_restart
    since_tunnel_up = stuck_for + reconnect
    worst = (retry or 0) + net_timeout
    result = {"stuck_observed_seconds": round(stuck_for, 3), "connect_retry": retry, "net_timeout": net_timeout,
              "reconnect_after_restart_seconds": round(reconnect, 3),
              "reconnect_after_tunnel_up_seconds": round(since_tunnel_up, 3),
              "waiting_would_take_up_to_seconds": worst,
              "time_saved_up_to_seconds": round(max(0.0, worst - since_tunnel_up), 3),
              "time_saved_expected_seconds": round(max(0.0, worst / 2 - since_tunnel_up), 3),
              "io": waited["state"]}
    if d is not None:
        d.extra_metrics["stuck_replica"] = result
    return result


_IO_STATES = {"Yes", "No", "Connecting"}


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
    if state not in _IO_STATES:
        raise ActivityFailed(f"wait_for_replica: state must be one of {sorted(_IO_STATES)}")
    inv = inventory(configuration)
    d = drill.current()
    t0 = time.monotonic()
    seen_down = False
    while True:
        st = read_replica_status(inv, secrets)
        io = st.io_running if st else None
        if io is not None and io != "Yes" and not seen_down:
            seen_down = True
            if d is not None and d.fault_injected and not d.has_event("outage_detected"):
                d.event("outage_detected", io=io)
        done = io == state and (not require_error or (st is not None and st.last_io_errno != 0))
        if done:
            if state == "Yes" and d is not None and d.tunnel_restored and not d.has_event("io_reconnected"):
                d.event("io_reconnected")
            return {"state": io, "seconds": round(time.monotonic() - t0, 3),
                    "last_io_errno": st.last_io_errno if st else None,
                    "last_io_error": st.last_io_error if st else None,
                    "sql_running": st.sql_running if st else None}
        if time.monotonic() - t0 >= timeout:
            raise ActivityFailed(
                f"replica {inv.replica.host}: IO thread still {io!r} after {timeout:g}s (wanted {state!r}"
                + (" with a connect error" if require_error else "") + "); last IO error: "
                + ((st.last_io_error or "none")[:200] if st else "replication not configured"))
        time.sleep(interval)


@activity
def wait_for_catch_up(timeout: float = 60, configuration: Mapping | None = None,
                      secrets: Mapping | None = None) -> dict[str, Any]:
    """Wait until the replica has applied everything the source had committed when this was called: the source's
    GTID position is read, then MASTER_GTID_WAIT (MariaDB) or WAIT_FOR_EXECUTED_GTID_SET (MySQL) blocks on the
    replica; without GTIDs, `testdb.ping` max id is polled instead. Records `caught_up` in a drill. Raises
    ActivityFailed past `timeout`."""
    inv = inventory(configuration)
    t0 = time.monotonic()
    src_dialect = dialect_of(inv.source, inv, secrets)
    rep_dialect = dialect_of(inv.replica, inv, secrets)
    pos = sql(inv.source, inv, src_dialect.executed_gtid, secrets=secrets)[0]["pos"]
    method = "gtid"
    if pos:
        r = sql(inv.replica, inv, rep_dialect.gtid_wait(), (pos, float(timeout)), secrets=secrets)[0]["r"]
        done = rep_dialect.gtid_wait_done(r)
    else:
        method = "poll"
        target = sql(inv.source, inv, f"SELECT COALESCE(MAX(id),0) AS m FROM {PING_TABLE}", secrets=secrets)[0]["m"]
        while True:
            have = sql(inv.replica, inv, f"SELECT COALESCE(MAX(id),0) AS m FROM {PING_TABLE}",
                       secrets=secrets)[0]["m"]
            done = have >= target
            if done or time.monotonic() - t0 >= timeout:
                break
            time.sleep(0.05)
    seconds = round(time.monotonic() - t0, 3)
    if not done:
        st = read_replica_status(inv, secrets)
        raise ActivityFailed(f"replica {inv.replica.host} did not catch up with the source within {timeout:g}s "
                             f"(waiting for {pos or 'max id'}; IO {st.io_running if st else None}, SQL "
                             f"{st.sql_running if st else None}): check SHOW REPLICA STATUS on {inv.replica.host}")
    d = drill.current()
    if d is not None and d.tunnel_restored and not d.has_event("caught_up"):
        d.event("caught_up", method=method)
    logger.info("replica caught up in %.3fs (%s)", seconds, method)
    return {"caught_up": True, "seconds": seconds, "method": method, "position": pos}
