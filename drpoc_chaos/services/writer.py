"""The writer: acknowledged rows on the source (the seed's `testdb.ping`), recorded in the running drill so that the
drill can prove afterwards that every acknowledged write reached the replica (attempted, acknowledged, id, GTID)."""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Mapping

import pymysql

from .. import db
from ..core import recorder
from ..core.clock import utc_now_iso, wait_until
from ..core.metrics import WriteRecord
from ..inventory import Inventory, MysqlEndpoint
from .context import db_pool, sql
from .errors import StepFailed
from .replica import PING_TABLE, dialect_of

MSG_MAX = 50  # the seed's msg VARCHAR(50)


def ensure_ping_table(inv: Inventory, secrets: Mapping | None = None) -> dict[str, Any]:
    """Create `testdb.ping` on the source if it is missing, exactly as the seed does (it replicates)."""
    existed = sql(inv.source, inv, "SELECT COUNT(*) AS n FROM information_schema.tables "
                                   "WHERE table_schema='testdb' AND table_name='ping'", secrets=secrets)[0]["n"]
    sql(inv.source, inv, "CREATE DATABASE IF NOT EXISTS testdb", secrets=secrets)
    sql(inv.source, inv, "CREATE TABLE IF NOT EXISTS testdb.ping (id INT AUTO_INCREMENT PRIMARY KEY, "
                         "msg VARCHAR(50), created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)", secrets=secrets)
    return {"created": not existed}


def check_msg(msg: Any) -> str:
    if not isinstance(msg, str) or not msg:
        raise StepFailed("write_ping: msg must be a non-empty string")
    if len(msg) > MSG_MAX:
        raise StepFailed(f"write_ping: msg is {len(msg)} characters; testdb.ping.msg holds {MSG_MAX}")
    return msg


# A write an application without READ_ONLY ADMIN / SUPER would have made: refused on a fenced (read_only) server.
# The drill's own MySQL user often holds those privileges (MariaDB's GRANT ALL includes READ_ONLY ADMIN, and a
# fencing user needs it to set read_only at all), and read_only does not stop it: recorded in
# tests/fixtures/mariadb-10.11-read-only-admin/. Without this guard a failover drill's writer would keep "succeeding"
# on the server it just fenced, and the switchover's zero-lost-writes claim would be about writes no application
# could have made. The check is inside the INSERT (one statement, row-based binlog: the replica applies the row, it
# does not re-evaluate the condition); under binlog_format=STATEMENT it is a separate read just before.
READ_ONLY_REFUSED = 1290  # ER_OPTION_PREVENTS_STATEMENT, what the server says to such an application


def _insert(conn, msg: str, dialect) -> tuple[int, str | None]:
    with conn.cursor() as cur:
        statement_binlog = getattr(conn, "_drpoc_statement_binlog", None)
        if statement_binlog is None:
            cur.execute("SELECT @@SESSION.binlog_format AS f")
            statement_binlog = str((cur.fetchone() or {}).get("f") or "").upper() == "STATEMENT"
            conn._drpoc_statement_binlog = statement_binlog
        if statement_binlog:
            cur.execute("SELECT @@GLOBAL.read_only AS ro")
            inserted = 0 if int((cur.fetchone() or {}).get("ro") or 0) else \
                cur.execute(f"INSERT INTO {PING_TABLE} (msg) VALUES (%s)", (msg,))
        else:
            # always a bound parameter: msg comes from experiment files and may hold anything
            inserted = cur.execute(f"INSERT INTO {PING_TABLE} (msg) SELECT %s FROM DUAL WHERE @@GLOBAL.read_only = 0",
                                   (msg,))
        if not inserted:
            raise pymysql.err.OperationalError(READ_ONLY_REFUSED, "the server is read_only (fenced): an application "
                                                                  "write would be refused")
        row_id = cur.lastrowid
        cur.execute(dialect.last_gtid)
        gtid = (cur.fetchone() or {}).get("gtid")
    return row_id, gtid


def _new_record(msg: str | None, phase: str, fallback: str) -> WriteRecord:
    d = recorder.current()
    msg = check_msg(msg if msg is not None else (d.next_msg(phase) if d else fallback))
    record = WriteRecord(msg=msg, phase=phase, attempted_t=d.t() if d else 0.0)
    if d:
        d.add_write(record)
    return record


def _now() -> float:
    d = recorder.current()
    return d.t() if d else 0.0


def write_ping(inv: Inventory, msg: str | None = None, phase: str = "manual", wait_visible_seconds: float = 0,
               secrets: Mapping | None = None) -> dict[str, Any]:
    """Insert one row into `testdb.ping` on the source. With `wait_visible_seconds` > 0 also wait for the row on
    the replica (StepFailed when it does not arrive)."""
    record = _new_record(msg, phase, f"drpoc:{phase}:{time.time():.3f}")
    conn = db_pool().get(inv.source, inv, secrets)
    dialect = dialect_of(inv.source, inv, secrets)
    try:
        row_id, gtid = _insert(conn, record.msg, dialect)
    except pymysql.MySQLError as exc:
        record.error = str(exc)[:200]
        raise db.db_error(exc, inv.source, "INSERT") from None
    record.id, record.gtid, record.acked_t = row_id, gtid, _now()
    out: dict[str, Any] = {"id": row_id, "msg": record.msg, "gtid": gtid, "committed_at": utc_now_iso()}
    if wait_visible_seconds > 0:
        t0 = time.monotonic()
        seen, _ = wait_until(lambda: sql(inv.replica, inv, f"SELECT id FROM {PING_TABLE} WHERE id=%s AND msg=%s",
                                         (row_id, record.msg), secrets=secrets), wait_visible_seconds, 0.01)
        if not seen:
            raise StepFailed(f"row {row_id} ({record.msg}) not on the replica {inv.replica.host} after "
                             f"{wait_visible_seconds:g}s: is replication running? (SHOW REPLICA STATUS)")
        out["visible_after"] = round(time.monotonic() - t0, 3)
        if recorder.current():
            record.visible_t = _now()
    return out


def write_target(inv: Inventory, target: str) -> MysqlEndpoint:
    """The server a writer writes to: `source` (every drill) or `replica` (the promoted one, in a failover)."""
    if target not in ("source", "replica"):
        raise StepFailed(f"target must be source, replica or primary, not {str(target)[:40]!r}")
    return inv.source if target == "source" else inv.replica


# an application's deadline for one write, connecting included: a frozen or cut-off server must not hold the writer
# for the inventory's 30 s read timeout — the failover's RTO would measure our timeouts, not the failover. One
# second: the lab's writes take milliseconds, and PyMySQL reads the server's greeting with the *read* timeout, so a
# connect through a relay that accepts at once (the lab's published ports, a load balancer) waits that long too
WRITE_TIMEOUT = 1.0


def _writer_endpoint(inv: Inventory, role: str) -> MysqlEndpoint:
    ep = write_target(inv, role)
    return replace(ep, connect_timeout=min(ep.connect_timeout, WRITE_TIMEOUT),
                   read_timeout=min(ep.read_timeout, WRITE_TIMEOUT), write_timeout=min(ep.write_timeout, WRITE_TIMEOUT))


FAULT_REFUSED = "fault_refused"  # recorded by the drill control when the fault action failed before injecting


def write_burst(inv: Inventory, count: int | None = None, duration: float | None = None, rate: float = 50.0,
                phase: str = "during", until_event: str | None = None, max_seconds: float = 600,
                secrets: Mapping | None = None, target: str = "source") -> dict[str, Any]:
    """Steady writes: `count` rows, or for `duration` seconds, or until the running drill records `until_event`,
    at `rate` rows per second — always bounded by `max_seconds`. Each write is its own autocommit transaction on a
    connection of its own (so it can run in the background while the tunnel is down); a failed write is counted as
    attempted, not acknowledged, and the burst reconnects and goes on. `target`: the server written to (`source`;
    `replica` once a failover promoted it; `primary` follows the running drill's primary as a failover moves it —
    each write's phase is then `old:`, `new:` or `back:` + `phase`, core.failover's labels)."""
    follow = target == "primary"
    role, label = recorder.writer_target() if follow else (target, "")
    endpoint = _writer_endpoint(inv, role)
    if count is None and duration is None and until_event is None:
        raise StepFailed("write_burst: give count, duration or until_event")
    if rate <= 0:
        raise StepFailed("write_burst: rate must be positive")
    d = recorder.current()
    dialect = dialect_of(endpoint, inv, secrets, pool=db.DbPool())
    conn = None
    ids: list[int] = []
    firsts: dict[str, bool] = {}
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
            if until_event and d is not None and (d.has_event(until_event) or d.has_event(FAULT_REFUSED)):
                break  # the event, or a fault that never happened (its event would never come)
            # pace against the schedule, not the previous write: the rate holds even when a write was slow
            due = started + attempted / rate
            # two clock reads: the second can be past `due` already (time.sleep refuses a negative length)
            time.sleep(max(0.0, due - time.monotonic()))
            if follow and recorder.writer_target() != (role, label):
                role, label = recorder.writer_target()
                endpoint = _writer_endpoint(inv, role)
                if conn is not None:
                    conn.close()
                conn = None
            record = _new_record(None, f"{label}:{phase}" if follow else phase, f"drpoc:burst:{attempted:06d}")
            attempted += 1
            try:
                if conn is None:
                    conn = db.connect(endpoint, inv, secrets)
                row_id, gtid = _insert(conn, record.msg, dialect)
                record.id, record.gtid, record.acked_t = row_id, gtid, _now()
                ids.append(row_id)
                if follow and label != "old" and not firsts.get(label):
                    firsts[label] = True
                    recorder.event(f"first_write_{label}", host=endpoint.host, msg=record.msg)
            except (pymysql.MySQLError, db.DbError) as exc:
                errors += 1
                record.error = str(exc)[:200]
                first_error = first_error or str(exc)[:200]
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001 — already broken
                        pass
                conn = None
    finally:
        if conn is not None:
            conn.close()
    seconds = time.monotonic() - started
    return {"attempted": attempted, "acknowledged": len(ids), "errors": errors, "first_error": first_error,
            "ids": ids, "seconds": round(seconds, 3),
            "achieved_rate": round(len(ids) / seconds, 1) if seconds > 0 else None}
