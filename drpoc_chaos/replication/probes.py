"""Chaos Toolkit probes of MySQL/MariaDB replication between the inventory's source and replica (adapters over
services.replica)."""
from __future__ import annotations

from typing import Any, Mapping

from ..activity import activity, number, table_arg
from ..inventory import resolve_secret
from ..services import replica, topology
from ..services.context import inventory
from ..services.replica import PING_TABLE

__all__ = ["replica_status", "replica_threads_running", "replication_lag", "lag_within", "ping_rows_match",
           "ping_rows_compare", "database_credentials_resolve", "writers", "single_writer"]


@activity
def replica_status(configuration: Mapping | None = None, secrets: Mapping | None = None) -> dict[str, Any] | None:
    """`SHOW REPLICA STATUS` (or `SHOW SLAVE STATUS` on older servers) on the replica, normalised across MySQL 8,
    MySQL 5.7 and MariaDB: io_running (Yes/No/Connecting), sql_running, seconds_behind_source (None for NULL), last
    IO/SQL errno and error, source host/port, GTID positions, connect retry. None when replication is not set up."""
    st = replica.read_status(inventory(configuration), secrets)
    if st is None:
        return None
    d = st.to_dict()
    d.pop("raw", None)
    return d


@activity
def replica_threads_running(configuration: Mapping | None = None, secrets: Mapping | None = None) -> bool:
    """True when both replica threads run (IO `Yes` and SQL `Yes`). Use with `tolerance: true`."""
    return replica.threads_running(replica.read_status(inventory(configuration), secrets))


@activity
def replication_lag(max_wait: float = 5.0, configuration: Mapping | None = None,
                    secrets: Mapping | None = None) -> dict[str, Any]:
    """Replication lag two ways: heartbeat-based (pt-heartbeat's table `drpoc.heartbeat`; a heartbeat is written on
    the source and watched for on the replica, 0.01 s resolution) and the server's Seconds_Behind_Source (which reads
    NULL or 0 while the IO thread is down). Returns {"heartbeat_lag", "arrived", "seconds_behind_source", "io",
    "sql"}."""
    inv = inventory(configuration)
    out = replica.measure_lag(inv, secrets, number("replication_lag", "max_wait", max_wait, minimum=0))
    st = replica.read_status(inv, secrets)
    out.update({"seconds_behind_source": st.seconds_behind_source if st else None,
                "io": st.io_running if st else None, "sql": st.sql_running if st else None})
    return out


@activity
def lag_within(max_seconds: float = 5.0, configuration: Mapping | None = None,
               secrets: Mapping | None = None) -> bool:
    """True when a heartbeat written now on the source reaches the replica within `max_seconds`."""
    limit = number("lag_within", "max_seconds", max_seconds, minimum=0)
    return replica.measure_lag(inventory(configuration), secrets, limit)["arrived"]


@activity
def ping_rows_compare(settle_seconds: float = 3.0, table: str = PING_TABLE, configuration: Mapping | None = None,
                      secrets: Mapping | None = None) -> dict[str, Any]:
    """Compare the seed's table on source and replica by content: row count, max id and a checksum of every row
    (BIT_XOR of CRC32 over id, msg, created_at). Replication is asynchronous, so a difference is re-checked for up
    to `settle_seconds`. Returns {"match", "source": {...}, "replica": {...}, "checks"}."""
    settle = number("ping_rows_compare", "settle_seconds", settle_seconds, minimum=0)
    return replica.compare_ping_rows(inventory(configuration), secrets, settle,
                                     table_arg("ping_rows_compare", "table", table))


@activity
def ping_rows_match(settle_seconds: float = 3.0, table: str = PING_TABLE, configuration: Mapping | None = None,
                    secrets: Mapping | None = None) -> bool:
    """True when `testdb.ping` holds the same rows on source and replica (count, max id and row checksum), allowing
    `settle_seconds` for in-flight replication. Use with `tolerance: true`."""
    return ping_rows_compare(settle_seconds, table, configuration, secrets)["match"]


@activity
def database_credentials_resolve(configuration: Mapping | None = None, secrets: Mapping | None = None) -> bool:
    """True when the password references of the source and the replica resolve here — environment variable, file, or
    Chaos Toolkit secret (`{secret: NAME}`: the provider must list the scope, `secrets: [drpoc]`) — checked without
    connecting; a preflight for a new inventory. Values are never returned or logged; a reference that does not
    resolve fails the probe with the key, the variable/file/secret it names and the fix."""
    inv = inventory(configuration)
    for db in (inv.source, inv.replica):
        if db.password_ref is None:  # the option_file holds it: PyMySQL reads it when connecting
            continue
        resolve_secret(db.password_ref, secrets, where=f"sites.{db.site}.database.mysql.password")
    return True


@activity
def writers(configuration: Mapping | None = None, secrets: Mapping | None = None) -> dict[str, Any]:
    """Which servers of the pair take writes (read_only off, and super_read_only off on MySQL): {"source": bool,
    "replica": bool, "writers": n, "single": n == 1}."""
    return topology.writers(inventory(configuration), secrets)


@activity
def single_writer(configuration: Mapping | None = None, secrets: Mapping | None = None) -> bool:
    """True when exactly one server of the pair is writable. In a VPN drill the replica must stay read-only:
    two writers is split brain. Use with `tolerance: true`."""
    return bool(topology.writers(inventory(configuration), secrets)["single"])
