"""Re-seed a former primary that holds errant transactions from the new primary: a logical dump of every non-system
schema with its GTID position (`mariadb-dump --single-transaction --gtid --master-data=2`, or MySQL's
`mysqldump --single-transaction --set-gtid-purged=ON`), loaded unlogged into the fenced old primary after its binary
log history is reset (RESET MASTER; RESET BINARY LOGS AND GTIDS on MySQL 8.2+), then replication by GTID from that
position.

Why a dump and not a physical backup tool (mariabackup, xtrabackup, MySQL's clone plugin): they must run on the
database host with access to its data directory (or, for clone, an extra plugin and grant on both servers); the
drill reaches MySQL only as a client. The dump tools ship with every client package, take a consistent snapshot
while the new primary keeps taking writes, and record the exact GTID position of that snapshot. Its cost is
proportional to the data, which is right for drills and small estates; a large estate re-seeds with its own backup
tool and sets `reseed: refuse` (the drill then stops with the old primary fenced and says so).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

from ..core.identifiers import IdentifierError, quote_schema
from ..inventory import Inventory, MysqlEndpoint, resolve_secret
from .context import sql
from .errors import StepFailed
from .replica import dialect_of

SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")
TOOLS = {"mariadb": (("mariadb-dump", "mysqldump"), ("mariadb", "mysql")), "mysql": (("mysqldump",), ("mysql",))}
_MARIADB_POS = re.compile(r"^-- SET GLOBAL gtid_slave_pos='([0-9,-]*)';\s*$", re.M)
_MYSQL_PURGED = re.compile(r"^SET @@GLOBAL\.GTID_PURGED=(?:/\*!80000 '\+'\*/ )?'([0-9A-Fa-f:,\s-]*)';\s*$", re.M)
DUMP_TIMEOUT = 3600


def _tool(names: tuple[str, ...]) -> str | None:
    return next((p for p in (shutil.which(n) for n in names) if p), None)


def check_tools(inv: Inventory) -> None:
    """Before the fault: the dump and client programs are on this machine and both servers are reached directly
    (a dump tool cannot use the drill's SSH `via` channel)."""
    for ep in (inv.source, inv.replica):
        if ep.via:
            raise StepFailed(f"re-seeding {ep} needs a direct connection (it is reached via {ep.via}): set "
                             f"reseed: refuse and re-seed by hand, or reach it directly")
    if not _tool(TOOLS["mariadb"][0]) or not _tool(TOOLS["mariadb"][1]):
        raise StepFailed("re-seeding needs mariadb-dump/mysqldump and the mariadb/mysql client on this machine: "
                         "install mariadb-client (or mysql-client), or set reseed: refuse")


def position_from_dump(text: str, flavor: str) -> str:
    """The GTID position a dump was taken at (MariaDB: the commented `SET GLOBAL gtid_slave_pos`; MySQL: its
    `SET @@GLOBAL.GTID_PURGED`). Raises StepFailed when the dump has none."""
    pattern = _MARIADB_POS if flavor == "mariadb" else _MYSQL_PURGED
    found = pattern.findall(text)
    if not found:
        raise StepFailed("the dump holds no GTID position (was binary logging with GTIDs on at the new primary?)")
    return re.sub(r"\s+", "", found[-1])


def option_file_text(ep: MysqlEndpoint, password: str) -> str:
    """A [client] option file for the client programs: the password never reaches a command line (ps) or a log."""
    def value(v: object) -> str:
        text = str(v)
        if "\n" in text or '"' in text or "\\" in text:
            raise StepFailed(f"{ep}: a value for the re-seed's option file holds a quote, backslash or newline")
        return f'"{text}"'

    lines = []
    if ep.option_file:
        lines.append(f"!include {ep.option_file}")
    lines += ["[client]", f"host={value(ep.address)}", f"port={int(ep.port)}"]
    if ep.user:
        lines.append(f"user={value(ep.user)}")
    if password:
        lines.append(f"password={value(password)}")
    if ep.ssl:
        lines += [f"ssl-ca={value(ep.ssl.ca)}"]
        if ep.ssl.cert:
            lines += [f"ssl-cert={value(ep.ssl.cert)}", f"ssl-key={value(ep.ssl.key)}"]
        lines.append("ssl-verify-server-cert" if ep.ssl.verify_identity else "skip-ssl-verify-server-cert")
    return "\n".join(lines) + "\n"


def dump_command(tool: str, option_file: Path, flavor: str, schemas: list[str]) -> list[str]:
    gtid = ["--gtid", "--master-data=2"] if flavor == "mariadb" else ["--set-gtid-purged=ON"]
    return [tool, f"--defaults-extra-file={option_file}", "--single-transaction", "--routines", "--events",
            "--triggers", "--hex-blob", *gtid, "--databases", *schemas]


def user_schemas(ep: MysqlEndpoint, inv: Inventory, secrets: Mapping | None) -> list[str]:
    rows = sql(ep, inv, "SELECT SCHEMA_NAME AS s FROM information_schema.SCHEMATA", secrets=secrets)
    return sorted(str(r["s"]) for r in rows if str(r["s"]).lower() not in SYSTEM_SCHEMAS)


def _run(cmd: list[str], what: str, **kw: Any) -> subprocess.CompletedProcess:
    try:
        kw.setdefault("stdout", subprocess.PIPE)
        r = subprocess.run(cmd, stderr=subprocess.PIPE, timeout=DUMP_TIMEOUT, **kw)
    except subprocess.TimeoutExpired:
        raise StepFailed(f"{what} did not finish within {DUMP_TIMEOUT}s") from None
    if r.returncode != 0:
        said = r.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise StepFailed(f"{what} (`{Path(cmd[0]).name}`) exited {r.returncode}: {said[0][:300]}")
    return r


def reseed(old: MysqlEndpoint, new: MysqlEndpoint, inv: Inventory, secrets: Mapping | None = None) -> dict[str, Any]:
    """Replace every non-system schema of the fenced `old` server with `new`'s, reset `old`'s binary log history
    (its errant transactions go with it) and set its replication position to the dump's. Replication itself is
    started by the caller (topology.repoint). Returns {"seconds", "position", "schemas", "bytes"}."""
    t0 = time.monotonic()
    flavor = dialect_of(new, inv, secrets).flavor
    old_dialect = dialect_of(old, inv, secrets)
    dump_tool, client_tool = (_tool(names) for names in TOOLS[flavor])
    if not dump_tool or not client_tool:
        raise StepFailed(f"re-seeding needs {' or '.join(TOOLS[flavor][0])} and {' or '.join(TOOLS[flavor][1])} "
                         f"on this machine")
    schemas = user_schemas(new, inv, secrets)
    drop = user_schemas(old, inv, secrets)
    try:
        for name in schemas + drop:
            quote_schema(name)  # refuses anything that is not a plain identifier
    except IdentifierError as exc:
        raise StepFailed(f"re-seeding {old}: {exc} — re-seed it by hand") from None
    with tempfile.TemporaryDirectory(prefix="drpoc-reseed-") as tmp:
        d = Path(tmp)
        new_cnf, old_cnf, dump = d / "new.cnf", d / "old.cnf", d / "dump.sql"
        for path, ep in ((new_cnf, new), (old_cnf, old)):
            password = "" if ep.password_ref is None else resolve_secret(
                ep.password_ref, secrets, where=f"sites.{ep.site}.database.mysql.password")
            path.touch(mode=0o600)
            path.write_text(option_file_text(ep, password))
        with dump.open("wb") as out:
            _run(dump_command(dump_tool, new_cnf, flavor, schemas), f"dumping {new}", stdout=out)
        position = position_from_dump(dump.read_text(errors="replace")[-20000:], flavor)
        # the old primary: no replication, an empty binary log history, and the schemas it is about to receive
        sql(old, inv, old_dialect.stop, secrets=secrets)
        sql(old, inv, old_dialect.reset_replica, secrets=secrets)
        sql(old, inv, old_dialect.reset_binlog, secrets=secrets)
        prelude = "SET SESSION sql_log_bin = 0;\n" + "".join(f"DROP DATABASE IF EXISTS {quote_schema(s)};\n"
                                                              for s in drop)
        with dump.open("rb") as body:
            data = prelude.encode() + body.read()
        # MySQL's super_read_only stops every user, the load's too: lifted for the load only, read_only stays on
        # (no application can write meanwhile); MariaDB's read_only lets the drill's READ_ONLY ADMIN user load
        lift = [s for s in old_dialect.fence if "super_read_only" in s]
        if lift:
            sql(old, inv, "SET GLOBAL super_read_only = OFF", secrets=secrets)
        try:
            _run([client_tool, f"--defaults-extra-file={old_cnf}", "--binary-mode"], f"loading the dump into {old}",
                 input=data)
        finally:
            for statement in lift:
                sql(old, inv, statement, secrets=secrets)
        if flavor == "mariadb":
            sql(old, inv, "SET GLOBAL gtid_slave_pos = %s", (position,), secrets=secrets)
        size = dump.stat().st_size
    return {"seconds": round(time.monotonic() - t0, 3), "position": position, "schemas": schemas, "bytes": size}
