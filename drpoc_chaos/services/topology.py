"""Who may write in the pair: read each server's read_only (and super_read_only on MySQL), and tell whether exactly one
takes writes. A VPN outage must never make the replica writable — two writers is split brain, a failure in every
drill (the failover drill moves the writer on purpose, and checks the same rule at every step)."""
from __future__ import annotations

import time
from typing import Any, Mapping

from ..core.gtid import errant, parse_position
from ..inventory import Inventory, MysqlEndpoint, resolve_secret
from .context import sql
from .errors import StepFailed
from .replica import already_has, dialect_of, read_status


def writable(endpoint: MysqlEndpoint, inv: Inventory, secrets: Mapping | None = None, pool=None) -> bool:
    """True when the server takes writes from ordinary users (read_only = 0, and super_read_only = 0 on MySQL)."""
    row = sql(endpoint, inv, dialect_of(endpoint, inv, secrets, pool).writable, secrets=secrets, pool=pool)[0]
    return int(row["ro"]) == 0 and int(row["sro"]) == 0


def writers(inv: Inventory, secrets: Mapping | None = None, pool=None) -> dict[str, Any]:
    """{"source": bool, "replica": bool, "writers": n, "single": n == 1} for the inventory's pair."""
    out: dict[str, Any] = {role: writable(ep, inv, secrets, pool)
                           for role, ep in (("source", inv.source), ("replica", inv.replica))}
    out["writers"] = sum(1 for role in ("source", "replica") if out[role])
    out["single"] = out["writers"] == 1
    return out


# --- moving the writer (the site failover drill) -----------------------------------------------------------------

def fence(endpoint: MysqlEndpoint, inv: Inventory, secrets: Mapping | None = None) -> None:
    """Make the server refuse writes (read_only; super_read_only on MySQL). Idempotent."""
    for statement in dialect_of(endpoint, inv, secrets).fence:
        sql(endpoint, inv, statement, secrets=secrets)


def unfence(endpoint: MysqlEndpoint, inv: Inventory, secrets: Mapping | None = None) -> None:
    """Let the server take writes again. Idempotent."""
    for statement in dialect_of(endpoint, inv, secrets).unfence:
        sql(endpoint, inv, statement, secrets=secrets)


def applied_position(endpoint: MysqlEndpoint, inv: Inventory, secrets: Mapping | None = None) -> str:
    """What the server's SQL thread has applied (MariaDB gtid_slave_pos, MySQL gtid_executed)."""
    row = sql(endpoint, inv, dialect_of(endpoint, inv, secrets).applied_gtid, secrets=secrets)[0]
    return str(row["pos"] or "")


def binlog_position(endpoint: MysqlEndpoint, inv: Inventory, secrets: Mapping | None = None) -> str:
    """Everything the server has in its binary log (MariaDB gtid_binlog_pos, MySQL gtid_executed)."""
    row = sql(endpoint, inv, dialect_of(endpoint, inv, secrets).executed_gtid, secrets=secrets)[0]
    return str(row["pos"] or "")


def drain(inv: Inventory, timeout: float, secrets: Mapping | None = None) -> dict[str, Any]:
    """Before a promotion: wait until the replica's SQL thread has applied everything its IO thread received
    (orchestrator's FailMasterPromotionIfSQLThreadNotUpToDate), bounded by `timeout`. Returns the received and
    applied positions; raises StepFailed when the relay log is not drained in time."""
    rep = inv.replica
    dialect = dialect_of(rep, inv, secrets)
    st = read_status(inv, secrets)
    if st is None:
        raise StepFailed(f"{rep.host}: replication is not configured: nothing to drain, and nothing says this "
                         f"server has the source's data")
    received = (st.gtid_io_pos if dialect.flavor == "mariadb" else st.retrieved_gtid_set) or ""
    if received:
        try:
            wait_applied(rep, received, inv, timeout, secrets)
        except StepFailed:
            raise StepFailed(f"{rep.host}: the SQL thread did not apply the received transactions ({received}) "
                             f"within {timeout:g}s: promoting now would lose them — check SHOW REPLICA STATUS") \
                from None
    return {"received": received, "applied": applied_position(rep, inv, secrets)}


def promote(endpoint: MysqlEndpoint, inv: Inventory, secrets: Mapping | None = None) -> dict[str, Any]:
    """Make a drained replica the primary: stop and forget replication, then take writes. Returns the position it
    had applied from the old primary (the fork, for counting the old primary's errant transactions later)."""
    dialect = dialect_of(endpoint, inv, secrets)
    sql(endpoint, inv, dialect.stop, secrets=secrets)
    fork = applied_position(endpoint, inv, secrets)
    sql(endpoint, inv, dialect.reset_replica, secrets=secrets)
    unfence(endpoint, inv, secrets)
    return {"fork": fork}


def errant_transactions(old: MysqlEndpoint, fork: str, inv: Inventory, secrets: Mapping | None = None) -> list[str]:
    """The former primary's transactions after `fork` (the promoted server's applied position at promotion): the
    writes the promotion left behind. MariaDB: from its binlog position (core.gtid); MySQL: GTID_SUBTRACT."""
    dialect = dialect_of(old, inv, secrets)
    if dialect.flavor == "mariadb":
        return [str(g) for g in errant(parse_position(binlog_position(old, inv, secrets)), parse_position(fork))]
    row = sql(old, inv, "SELECT GTID_SUBTRACT(@@GLOBAL.gtid_executed, %s) AS e", (fork,), secrets=secrets)[0]
    return [part.strip() for part in str(row["e"] or "").replace("\n", "").split(",") if part.strip()]


def repoint(endpoint: MysqlEndpoint, new_source: MysqlEndpoint, inv: Inventory, secrets: Mapping | None = None,
            settings: Mapping[str, float | None] | None = None) -> dict[str, Any]:
    """Make `endpoint` a replica of `new_source` by GTID (fenced first: a replica takes no writes), with the
    inventory's `replication` account, at `new_source`'s replication address. `settings` (connect_retry,
    heartbeat_period) are the replica's own, carried over from before the failover."""
    if inv.replication is None:
        raise StepFailed("the inventory has no `replication` account (user, password): a failover drill needs it to "
                         "re-point servers — add `replication: {user: …, password: {file|env|secret: …}}`")
    if not new_source.replication_address:
        raise StepFailed(f"sites.{new_source.site}.database.mysql.replication_address is not set: give the address "
                         f"the other site's server reaches {new_source.host} at for replication")
    password = resolve_secret(inv.replication.password_ref, secrets, where="replication.password")
    dialect = dialect_of(endpoint, inv, secrets)
    settings = settings or {}
    fence(endpoint, inv, secrets)
    sql(endpoint, inv, dialect.stop, secrets=secrets)
    for statement in dialect.adopt_own_history:
        sql(endpoint, inv, statement, secrets=secrets)
    retry, heartbeat = settings.get("connect_retry"), settings.get("heartbeat_period")
    sql(endpoint, inv, dialect.change_source(new_source.replication_address, new_source.replication_port,
                                             connect_retry=int(retry) if retry else None,
                                             heartbeat_period=heartbeat or None),
        (inv.replication.user, password), secrets=secrets)
    sql(endpoint, inv, dialect.start, secrets=secrets)
    return {"replica": endpoint.host, "source": new_source.host,
            "source_address": f"{new_source.replication_address}:{new_source.replication_port}"}


def wait_applied(endpoint: MysqlEndpoint, position: str, inv: Inventory, timeout: float,
                 secrets: Mapping | None = None) -> float:
    """Block until `endpoint` has applied `position` (a GTID set/position of the server it replicates from), bounded;
    returns the seconds it took. Raises StepFailed past `timeout`. The server-side wait runs in slices shorter than
    the connection's read timeout (a longer MASTER_GTID_WAIT would be cut by the client, not answered)."""
    dialect = dialect_of(endpoint, inv, secrets)
    t0 = time.monotonic()
    slice_seconds = max(1.0, min(10.0, endpoint.read_timeout - 5))
    while position and not already_has(endpoint, inv, position, secrets):
        left = timeout - (time.monotonic() - t0)
        if left <= 0:
            raise StepFailed(f"{endpoint.host} did not apply {position} within {timeout:g}s: check SHOW REPLICA "
                             f"STATUS there")
        r = sql(endpoint, inv, dialect.gtid_wait(), (position, float(min(left, slice_seconds))),
                secrets=secrets)[0]["r"]
        if dialect.gtid_wait_done(r):
            break
    return round(time.monotonic() - t0, 3)
