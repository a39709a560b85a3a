"""Probes of MySQL/MariaDB replication between the source and the replica of the inventory (PyMySQL)."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Mapping

from ..activity import activity, inventory, sql
from .dialect import Dialect, parse_version
from .status import ReplicaStatus, parse_replica_status

__all__ = ["replica_status", "replica_threads_running", "replication_lag", "lag_within", "ping_rows_match",
           "ping_rows_compare"]

HEARTBEAT_TABLE = "drpoc.heartbeat"  # pt-heartbeat's columns: ts, server_id, file, position, relay_master_…
PING_TABLE = "testdb.ping"
_dialects: dict[tuple, Dialect] = {}


def dialect_of(endpoint, inv, secrets=None, pool=None) -> Dialect:
    """Ask the server its version once per endpoint and remember the answer."""
    key = (endpoint.address, endpoint.port, endpoint.via)
    if key not in _dialects:
        row = sql(endpoint, inv, "SELECT VERSION() AS v", secrets=secrets, pool=pool)[0]
        _dialects[key] = parse_version(str(row["v"]))
    return _dialects[key]


def read_replica_status(inv, secrets=None, pool=None) -> ReplicaStatus | None:
    rep = inv.replica
    rows = sql(rep, inv, dialect_of(rep, inv, secrets, pool).show_status, secrets=secrets, pool=pool)
    return parse_replica_status(rows[0] if rows else None)


def read_replica_settings(inv, secrets=None, pool=None) -> dict[str, float | None]:
    """net_timeout, heartbeat_period and connect_retry of the replica, in seconds (None when a value cannot be
    read, e.g. performance_schema not granted on MySQL)."""
    rep = inv.replica
    dialect = dialect_of(rep, inv, secrets, pool)

    def number(statement: str, column: str) -> float | None:
        try:
            rows = sql(rep, inv, statement, secrets=secrets, pool=pool)
        except Exception:  # noqa: BLE001 — a missing grant leaves this one value unknown, nothing more
            return None
        try:
            return float(rows[0][column]) if rows and rows[0].get(column) is not None else None
        except (TypeError, ValueError):
            return None

    status = read_replica_status(inv, secrets, pool)
    return {"net_timeout": number(dialect.net_timeout, "v"),
            "heartbeat_period": number(dialect.heartbeat_period, "Value"),
            "connect_retry": float(status.connect_retry) if status and status.connect_retry is not None else None}


def _utc_ts() -> str:
    # pt-heartbeat's format: ISO 8601 with microseconds, UTC
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _ts_age(ts: str | None) -> float | None:
    if not ts:
        return None
    then = datetime.strptime(ts[:26], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc)
    return max(0.0, (datetime.now(timezone.utc) - then).total_seconds())


def write_heartbeat(inv, secrets=None, pool=None, table: str = HEARTBEAT_TABLE) -> str:
    """One pt-heartbeat-style update on the source; returns the ts written."""
    ts = _utc_ts()
    sql(inv.source, inv, f"REPLACE INTO {table} (ts, server_id) VALUES (%s, @@server_id)", (ts,),
        secrets=secrets, pool=pool)
    return ts


def read_heartbeat_age(inv, secrets=None, pool=None, table: str = HEARTBEAT_TABLE) -> float | None:
    """Age of the newest source heartbeat the replica has applied (pt-heartbeat's lag)."""
    rows = sql(inv.replica, inv, f"SELECT ts FROM {table} ORDER BY ts DESC LIMIT 1", secrets=secrets, pool=pool)
    return _ts_age(rows[0]["ts"]) if rows else None


def measure_lag(inv, secrets=None, max_wait: float = 5.0, pool=None, interval: float = 0.01) -> dict[str, Any]:
    """Write a heartbeat on the source and watch the replica for it: the time until it is visible is the current
    replication delay (0.01 s resolution); if it does not arrive within `max_wait`, the lag is the age of the
    newest heartbeat the replica has, which keeps growing while replication is broken."""
    written = write_heartbeat(inv, secrets, pool)
    t0 = time.monotonic()
    deadline = t0 + max_wait
    while True:
        rows = sql(inv.replica, inv, f"SELECT ts FROM {HEARTBEAT_TABLE} ORDER BY ts DESC LIMIT 1",
                   secrets=secrets, pool=pool)
        seen = rows[0]["ts"] if rows else None
        if seen is not None and seen >= written:
            return {"heartbeat_lag": round(time.monotonic() - t0, 3), "arrived": True}
        if time.monotonic() >= deadline:
            return {"heartbeat_lag": round(_ts_age(seen) or (time.monotonic() - t0), 3), "arrived": False}
        time.sleep(interval)


@activity
def replica_status(configuration: Mapping | None = None, secrets: Mapping | None = None) -> dict[str, Any] | None:
    """`SHOW REPLICA STATUS` (or `SHOW SLAVE STATUS` on older servers) on the replica, normalised across MySQL 8,
    MySQL 5.7 and MariaDB: io_running (Yes/No/Connecting), sql_running, seconds_behind_source (None for NULL), last
    IO/SQL errno and error, source host/port, GTID positions, connect retry. None when replication is not set up."""
    inv = inventory(configuration)
    st = read_replica_status(inv, secrets)
    if st is None:
        return None
    d = st.to_dict()
    d.pop("raw", None)
    return d


@activity
def replica_threads_running(configuration: Mapping | None = None, secrets: Mapping | None = None) -> bool:
    """True when both replica threads run (IO `Yes` and SQL `Yes`). Use with `tolerance: true`."""
    st = read_replica_status(inventory(configuration), secrets)
    return bool(st and st.io_running == "Yes" and st.sql_running == "Yes")


@activity
def replication_lag(max_wait: float = 5.0, configuration: Mapping | None = None,
                    secrets: Mapping | None = None) -> dict[str, Any]:
    """Replication lag two ways: heartbeat-based (pt-heartbeat's table `drpoc.heartbeat`; a heartbeat is written on
    the source and watched for on the replica, 0.01 s resolution) and the server's Seconds_Behind_Source (which reads
    NULL or 0 while the IO thread is down). Returns {"heartbeat_lag", "arrived", "seconds_behind_source", "io",
    "sql"}."""
    inv = inventory(configuration)
    out = measure_lag(inv, secrets, max_wait)
    st = read_replica_status(inv, secrets)
    out.update({"seconds_behind_source": st.seconds_behind_source if st else None,
                "io": st.io_running if st else None, "sql": st.sql_running if st else None})
    return out


@activity
def lag_within(max_seconds: float = 5.0, configuration: Mapping | None = None,
               secrets: Mapping | None = None) -> bool:
    """True when a heartbeat written now on the source reaches the replica within `max_seconds`."""
    return measure_lag(inventory(configuration), secrets, float(max_seconds))["arrived"]


# pt-table-checksum's idea on the seed's table: BIT_XOR of a per-row CRC32, order-independent, compared with count
# and max id. UNIX_TIMESTAMP keeps the check independent of each server's time zone.
_CHECKSUM_SQL = ("SELECT COUNT(*) AS n, COALESCE(MAX(id), 0) AS max_id, "
                 "COALESCE(BIT_XOR(CRC32(CONCAT_WS('#', id, msg, UNIX_TIMESTAMP(created_at)))), 0) AS checksum "
                 "FROM {table}")


def ping_checksums(inv, secrets=None, table: str = PING_TABLE, pool=None) -> dict[str, dict]:
    q = _CHECKSUM_SQL.format(table=table)
    src = sql(inv.source, inv, q, secrets=secrets, pool=pool)[0]
    rep = sql(inv.replica, inv, q, secrets=secrets, pool=pool)[0]
    norm = lambda r: {"rows": int(r["n"]), "max_id": int(r["max_id"]), "checksum": int(r["checksum"])}
    return {"source": norm(src), "replica": norm(rep)}


@activity
def ping_rows_compare(settle_seconds: float = 3.0, table: str = PING_TABLE, configuration: Mapping | None = None,
                      secrets: Mapping | None = None) -> dict[str, Any]:
    """Compare the seed's table on source and replica by content: row count, max id and a checksum of every row
    (BIT_XOR of CRC32 over id, msg, created_at). Replication is asynchronous, so a difference is re-checked for up
    to `settle_seconds`. Returns {"match", "source": {...}, "replica": {...}, "checks"}."""
    inv = inventory(configuration)
    deadline = time.monotonic() + settle_seconds
    checks = 0
    while True:
        checks += 1
        sums = ping_checksums(inv, secrets, table)
        if sums["source"] == sums["replica"] or time.monotonic() >= deadline:
            return {"match": sums["source"] == sums["replica"], **sums, "checks": checks}
        time.sleep(0.1)


@activity
def ping_rows_match(settle_seconds: float = 3.0, table: str = PING_TABLE, configuration: Mapping | None = None,
                    secrets: Mapping | None = None) -> bool:
    """True when `testdb.ping` holds the same rows on source and replica (count, max id and row checksum), allowing
    `settle_seconds` for in-flight replication. Use with `tolerance: true`."""
    return ping_rows_compare(settle_seconds, table, configuration, secrets)["match"]
