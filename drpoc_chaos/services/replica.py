"""Replica control: what the replica says (status, settings, lag, the seed table's checksum), restarting it, and the
bounded waits a drill needs (the IO thread in a state, the replica caught up with the source). MySQL 8, MySQL 5.7
and MariaDB through replication/dialect.py; everything over PyMySQL (db.py)."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any, Mapping

from .. import db
from ..core import recorder
from ..core.clock import wait_until
from ..core.gtid import parse_position, reached
from ..core.identifiers import quote_table
from ..inventory import Inventory, MysqlEndpoint
from ..replication.dialect import Dialect, parse_version
from ..replication.status import ReplicaStatus, parse_replica_status
from .context import sql
from .errors import StepFailed

logger = logging.getLogger("chaostoolkit")

HEARTBEAT_TABLE = "drpoc.heartbeat"  # the default; pt-heartbeat's columns: ts, server_id, file, position, …
PING_TABLE = "testdb.ping"
IO_STATES = ("Yes", "No", "Connecting")
_dialects: dict[tuple, Dialect] = {}


def dialect_of(endpoint: MysqlEndpoint, inv: Inventory, secrets: Mapping | None = None, pool=None) -> Dialect:
    """Ask the server its version once per endpoint and remember the answer."""
    key = (endpoint.address, endpoint.port, endpoint.via)
    if key not in _dialects:
        row = sql(endpoint, inv, "SELECT VERSION() AS v", secrets=secrets, pool=pool)[0]
        _dialects[key] = parse_version(str(row["v"]))
    return _dialects[key]


def read_status(inv: Inventory, secrets: Mapping | None = None, pool=None) -> ReplicaStatus | None:
    return status_of(inv.replica, inv, secrets, pool)


def status_of(endpoint: MysqlEndpoint, inv: Inventory, secrets: Mapping | None = None,
              pool=None) -> ReplicaStatus | None:
    """Any server's replica status (None: replication not configured there) — a failover re-points the source too."""
    rows = sql(endpoint, inv, dialect_of(endpoint, inv, secrets, pool).show_status, secrets=secrets, pool=pool)
    return parse_replica_status(rows[0] if rows else None)


def threads_running(st: ReplicaStatus | None) -> bool:
    """Both threads: the IO thread connected (`Yes`, not `Connecting`) and the SQL thread applying."""
    return bool(st and st.io_running == "Yes" and st.sql_running == "Yes")


def read_settings(inv: Inventory, secrets: Mapping | None = None, pool=None) -> dict[str, float | None]:
    """net_timeout, heartbeat_period and connect_retry of the replica, in seconds (None when a value cannot be
    read, e.g. performance_schema not granted on MySQL)."""
    rep = inv.replica
    dialect = dialect_of(rep, inv, secrets, pool)

    def number(statement: str, column: str) -> float | None:
        try:
            rows = sql(rep, inv, statement, secrets=secrets, pool=pool)
        except db.DbError:  # a missing grant leaves this one value unknown, nothing more
            return None
        try:
            return float(rows[0][column]) if rows and rows[0].get(column) is not None else None
        except (TypeError, ValueError):
            return None

    status = read_status(inv, secrets, pool)
    return {"net_timeout": number(dialect.net_timeout, "v"),
            "heartbeat_period": number(dialect.heartbeat_period, "Value"),
            "connect_retry": float(status.connect_retry) if status and status.connect_retry is not None else None}


# --- heartbeat lag ---------------------------------------------------------------------------------------------

def _utc_ts() -> str:
    # pt-heartbeat's format: ISO 8601 with microseconds, UTC
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _ts_age(ts: str | None) -> float | None:
    if not ts:
        return None
    # with or without microseconds (pt-heartbeat writes them; a hand-made row may not)
    then = datetime.fromisoformat(ts[:26]).replace(tzinfo=timezone.utc)
    return max(0.0, (datetime.now(timezone.utc) - then).total_seconds())


def _table(inv: Inventory, table: str | None) -> str:
    # checked again here (a caller may pass its own); backquotes keep a reserved word usable
    return quote_table(table or inv.heartbeat.table, "heartbeat table")


def heartbeat_written_by_drpoc(inv: Inventory) -> bool:
    """False when the inventory says a pt-heartbeat daemon writes the table (`heartbeat.format: pt-heartbeat`)."""
    return inv.heartbeat.format == "drpoc"


def write_heartbeat(inv: Inventory, secrets: Mapping | None = None, pool=None,
                    table: str | None = None) -> str:
    """One pt-heartbeat-style update on the source (the inventory's heartbeat table); returns the ts written.

    Not on a fenced (read_only) source: the drill's user may hold READ_ONLY ADMIN and write through the fence
    (services/writer.py), and a heartbeat on a failover's fenced old primary is an errant transaction that breaks
    its replication under gtid_strict_mode — seen on the lab. The condition is in the statement (row-based binlog:
    the replica applies the row)."""
    ts = _utc_ts()
    sql(inv.source, inv, f"REPLACE INTO {_table(inv, table)} (ts, server_id) SELECT %s, @@server_id FROM DUAL "
                         f"WHERE @@GLOBAL.read_only = 0", (ts,), secrets=secrets, pool=pool)
    return ts


_source_ids: dict[tuple, int] = {}


def _source_server_id(inv: Inventory, secrets: Mapping | None, pool) -> int:
    """The source's server_id (once per endpoint): pt-heartbeat's table holds a row per server that ran it."""
    src = inv.source
    key = (src.address, src.port, src.via)
    if key not in _source_ids:
        _source_ids[key] = int(sql(src, inv, "SELECT @@server_id AS id", secrets=secrets, pool=pool)[0]["id"])
    return _source_ids[key]


def _newest_heartbeat(inv: Inventory, secrets: Mapping | None, pool, table: str | None) -> str | None:
    if heartbeat_written_by_drpoc(inv):
        rows = sql(inv.replica, inv, f"SELECT ts FROM {_table(inv, table)} ORDER BY ts DESC LIMIT 1",
                   secrets=secrets, pool=pool)
    else:  # pt-heartbeat: the row of the source's server
        rows = sql(inv.replica, inv, f"SELECT ts FROM {_table(inv, table)} WHERE server_id = %s",
                   (_source_server_id(inv, secrets, pool),), secrets=secrets, pool=pool)
    return str(rows[0]["ts"]) if rows and rows[0]["ts"] is not None else None


def read_heartbeat_age(inv: Inventory, secrets: Mapping | None = None, pool=None,
                       table: str | None = None) -> float | None:
    """Age of the newest source heartbeat the replica has applied (pt-heartbeat's lag)."""
    return _ts_age(_newest_heartbeat(inv, secrets, pool, table))


def measure_lag(inv: Inventory, secrets: Mapping | None = None, max_wait: float = 5.0, pool=None,
                interval: float = 0.01) -> dict[str, Any]:
    """Write a heartbeat on the source and watch the replica for it: the time until it is visible is the current
    replication delay (0.01 s resolution); if it does not arrive within `max_wait`, the lag is the age of the
    newest heartbeat the replica has, which keeps growing while replication is broken.

    With `heartbeat.format: pt-heartbeat` the daemon writes: the lag is the age of the source's row on the replica
    (pt-heartbeat's own measure, resolution its --interval), watched for up to `max_wait` to come within it."""
    if not heartbeat_written_by_drpoc(inv):
        within, age = wait_until(lambda: read_heartbeat_age(inv, secrets, pool), max_wait, max(interval, 0.1),
                                 done=lambda a: a is not None and a <= max_wait)
        return {"heartbeat_lag": round(age, 3) if age is not None else None, "arrived": bool(within),
                "source": "pt-heartbeat"}
    written = write_heartbeat(inv, secrets, pool)
    t0 = time.monotonic()
    arrived, seen = wait_until(lambda: _newest_heartbeat(inv, secrets, pool, None), max_wait, interval,
                               done=lambda ts: ts is not None and ts >= written)
    if arrived:
        return {"heartbeat_lag": round(time.monotonic() - t0, 3), "arrived": True}
    return {"heartbeat_lag": round(_ts_age(seen) or (time.monotonic() - t0), 3), "arrived": False}


# --- the seed table, compared by content -----------------------------------------------------------------------

# pt-table-checksum's idea on the seed's table: BIT_XOR of a per-row CRC32, order-independent, compared with count
# and max id. UNIX_TIMESTAMP keeps the check independent of each server's time zone.
_CHECKSUM_SQL = ("SELECT COUNT(*) AS n, COALESCE(MAX(id), 0) AS max_id, "
                 "COALESCE(BIT_XOR(CRC32(CONCAT_WS('#', id, msg, UNIX_TIMESTAMP(created_at)))), 0) AS checksum "
                 "FROM {table}")


def ping_checksums(inv: Inventory, secrets: Mapping | None = None, table: str = PING_TABLE,
                   pool=None) -> dict[str, dict]:
    q = _CHECKSUM_SQL.format(table=quote_table(table))
    src = sql(inv.source, inv, q, secrets=secrets, pool=pool)[0]
    rep = sql(inv.replica, inv, q, secrets=secrets, pool=pool)[0]

    def norm(r: Mapping) -> dict[str, int]:
        return {"rows": int(r["n"]), "max_id": int(r["max_id"]), "checksum": int(r["checksum"])}

    return {"source": norm(src), "replica": norm(rep)}


def compare_ping_rows(inv: Inventory, secrets: Mapping | None = None, settle_seconds: float = 3.0,
                      table: str = PING_TABLE) -> dict[str, Any]:
    """Compare the seed table on source and replica by content, re-checking a difference for `settle_seconds`
    (replication is asynchronous)."""
    checks = 0

    def check() -> dict[str, dict]:
        nonlocal checks
        checks += 1
        return ping_checksums(inv, secrets, table)

    match, sums = wait_until(check, settle_seconds, 0.1, done=lambda s: s["source"] == s["replica"])
    return {"match": match, **sums, "checks": checks}


# --- changing the replica ------------------------------------------------------------------------------------------

def restart(inv: Inventory, secrets: Mapping | None = None) -> dict[str, Any]:
    """`STOP REPLICA; START REPLICA;` (`… SLAVE` on servers that predate the new words) — the seed's fix for a
    replica still `Connecting` after the VPN is back. Returns the status after."""
    dialect = dialect_of(inv.replica, inv, secrets)
    sql(inv.replica, inv, dialect.stop, secrets=secrets)
    sql(inv.replica, inv, dialect.start, secrets=secrets)
    recorder.event("replica_restarted")
    st = read_status(inv, secrets)
    return {"statements": [dialect.stop, dialect.start], "io": st.io_running if st else None,
            "sql": st.sql_running if st else None}


def set_connect_retry(inv: Inventory, seconds: int, secrets: Mapping | None = None) -> int | None:
    """Set MASTER_CONNECT_RETRY / SOURCE_CONNECT_RETRY, restarting the replica threads around it. Returns the
    previous value."""
    dialect = dialect_of(inv.replica, inv, secrets)
    before = read_status(inv, secrets)
    if before is None:
        raise StepFailed(f"{inv.replica.host}: replication is not configured; nothing to change")
    sql(inv.replica, inv, dialect.stop, secrets=secrets)
    try:
        sql(inv.replica, inv, dialect.set_connect_retry(int(seconds)), secrets=secrets)
    finally:
        sql(inv.replica, inv, dialect.start, secrets=secrets)
    return before.connect_retry


# --- waits -----------------------------------------------------------------------------------------------------

def wait_for_io(inv: Inventory, state: str = "Yes", *, require_error: bool = False, timeout: float = 60,
                interval: float = 0.1, secrets: Mapping | None = None) -> dict[str, Any]:
    """Poll until the IO thread is in `state` — with `require_error`, until it also shows its connect error
    (Last_IO_Errno ≠ 0). A running drill learns of the outage's detection and of the reconnect. Raises StepFailed
    past `timeout` with the last status seen."""
    if state not in IO_STATES:
        raise StepFailed(f"wait_for_replica: state must be one of {sorted(IO_STATES)}")
    t0 = time.monotonic()

    def check() -> ReplicaStatus | None:
        st = read_status(inv, secrets)
        recorder.replica_io_seen(st.io_running if st else None)
        return st

    def reached(st: ReplicaStatus | None) -> bool:
        return bool(st and st.io_running == state and (not require_error or st.last_io_errno != 0))

    done, st = wait_until(check, timeout, interval, done=reached)
    if not done or st is None:  # done means st is a status
        raise StepFailed(
            f"replica {inv.replica.host}: IO thread still {st.io_running if st else None!r} after {timeout:g}s "
            f"(wanted {state!r}" + (" with a connect error" if require_error else "") + "); last IO error: "
            + ((st.last_io_error or "none")[:200] if st else "replication not configured"))
    if state == "Yes":
        recorder.io_reconnected()
    return {"state": st.io_running, "seconds": round(time.monotonic() - t0, 3), "last_io_errno": st.last_io_errno,
            "last_io_error": st.last_io_error, "sql_running": st.sql_running}


def already_has(endpoint: MysqlEndpoint, inv: Inventory, position: str, secrets: Mapping | None = None) -> bool:
    """MariaDB: does the server's own history (gtid_current_pos: what it applied *and* what it wrote itself) reach
    `position`? MASTER_GTID_WAIT looks at gtid_slave_pos only, so after a failback the source's newest GTID can be
    one this server wrote while it was the primary: it has it, yet would wait for it until the timeout. MySQL's
    gtid_executed holds both already: False there (WAIT_FOR_EXECUTED_GTID_SET returns at once)."""
    if dialect_of(endpoint, inv, secrets).flavor != "mariadb":
        return False
    current = sql(endpoint, inv, "SELECT @@GLOBAL.gtid_current_pos AS pos", secrets=secrets)[0]["pos"]
    try:
        return reached(parse_position(str(current or "")), parse_position(position))
    except ValueError:
        return False


def catch_up(inv: Inventory, *, timeout: float = 60, secrets: Mapping | None = None) -> dict[str, Any]:
    """Wait until the replica has applied everything the source had committed when this was called: the source's
    GTID position is read, then MASTER_GTID_WAIT (MariaDB) or WAIT_FOR_EXECUTED_GTID_SET (MySQL) blocks on the
    replica; without GTIDs, the seed table's max id is polled instead. Raises StepFailed past `timeout`."""
    t0 = time.monotonic()
    src_dialect = dialect_of(inv.source, inv, secrets)
    rep_dialect = dialect_of(inv.replica, inv, secrets)
    pos = sql(inv.source, inv, src_dialect.executed_gtid, secrets=secrets)[0]["pos"]
    method = "gtid"
    if pos:
        done = already_has(inv.replica, inv, str(pos), secrets)
        if not done:
            r = sql(inv.replica, inv, rep_dialect.gtid_wait(), (pos, float(timeout)), secrets=secrets)[0]["r"]
            done = rep_dialect.gtid_wait_done(r)
    else:
        method = "poll"
        query = f"SELECT COALESCE(MAX(id),0) AS m FROM {PING_TABLE}"
        target = sql(inv.source, inv, query, secrets=secrets)[0]["m"]
        done, _ = wait_until(lambda: sql(inv.replica, inv, query, secrets=secrets)[0]["m"], timeout, 0.05,
                             done=lambda have: have >= target)
    seconds = round(time.monotonic() - t0, 3)
    if not done:
        st = read_status(inv, secrets)
        raise StepFailed(f"replica {inv.replica.host} did not catch up with the source within {timeout:g}s "
                         f"(waiting for {pos or 'max id'}; IO {st.io_running if st else None}, SQL "
                         f"{st.sql_running if st else None}): check SHOW REPLICA STATUS on {inv.replica.host}")
    recorder.caught_up(method)
    logger.info("replica caught up in %.3fs (%s)", seconds, method)
    return {"caught_up": True, "seconds": seconds, "method": method, "position": pos}
