"""Which SQL a server understands: MySQL 8.0.22+ says REPLICA/SOURCE, older MySQL and MariaDB say SLAVE/MASTER
(MariaDB 10.5+ accepts `SHOW REPLICA STATUS` but keeps the Slave_*/Master_* columns). Pure: the version string in,
statements out. The server is asked its version once per endpoint (see probes.flavor_of)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Dialect:
    flavor: str  # "mysql" | "mariadb"
    version: tuple[int, int, int]

    @property
    def replica_words(self) -> bool:
        if self.flavor == "mariadb":
            return self.version >= (10, 5, 1)
        return self.version >= (8, 0, 22)

    @property
    def show_status(self) -> str:
        return "SHOW REPLICA STATUS" if self.replica_words else "SHOW SLAVE STATUS"

    @property
    def stop(self) -> str:
        return "STOP REPLICA" if self.replica_words else "STOP SLAVE"

    @property
    def start(self) -> str:
        return "START REPLICA" if self.replica_words else "START SLAVE"

    def set_connect_retry(self, seconds: int) -> str:
        if self.flavor == "mysql" and self.version >= (8, 0, 23):
            return f"CHANGE REPLICATION SOURCE TO SOURCE_CONNECT_RETRY={int(seconds)}"
        return f"CHANGE MASTER TO MASTER_CONNECT_RETRY={int(seconds)}"

    @property
    def executed_gtid(self) -> str:
        """The source's position to wait for on the replica."""
        return "SELECT @@GLOBAL.gtid_binlog_pos AS pos" if self.flavor == "mariadb" \
            else "SELECT @@GLOBAL.gtid_executed AS pos"

    def gtid_wait(self) -> str:
        """Blocks on the replica until the position is applied; returns 0 (done) or -1/1 (timeout)."""
        if self.flavor == "mariadb":
            return "SELECT MASTER_GTID_WAIT(%s, %s) AS r"
        return "SELECT WAIT_FOR_EXECUTED_GTID_SET(%s, %s) AS r"

    def gtid_wait_done(self, result: Any) -> bool:
        return result is not None and int(result) == 0

    @property
    def net_timeout(self) -> str:
        """The replica's net timeout: MySQL renamed slave_net_timeout to replica_net_timeout in 8.0.26."""
        if self.flavor == "mysql" and self.version >= (8, 0, 26):
            return "SELECT @@GLOBAL.replica_net_timeout AS v"
        return "SELECT @@GLOBAL.slave_net_timeout AS v"

    @property
    def heartbeat_period(self) -> str:
        """The replica's heartbeat period (a status variable on MariaDB, the connection's configuration on MySQL)."""
        if self.flavor == "mariadb":
            return "SHOW GLOBAL STATUS LIKE 'Slave_heartbeat_period'"
        return "SELECT HEARTBEAT_INTERVAL AS Value FROM performance_schema.replication_connection_configuration LIMIT 1"

    # --- who may write, and moving the writer (the site failover drill) -------------------------------------

    @property
    def writable(self) -> str:
        """`ro` = read_only, `sro` = super_read_only (MySQL 5.7+; MariaDB has none: 0). A server takes writes from
        ordinary users only when both are 0."""
        if self.flavor == "mysql" and self.version >= (5, 7, 8):
            return "SELECT @@GLOBAL.read_only AS ro, @@GLOBAL.super_read_only AS sro"
        return "SELECT @@GLOBAL.read_only AS ro, 0 AS sro"

    @property
    def fence(self) -> list[str]:
        """Make the server refuse writes. On MySQL super_read_only too, so even a SUPER session cannot write (the
        drill's user may have it)."""
        if self.flavor == "mysql" and self.version >= (5, 7, 8):
            return ["SET GLOBAL super_read_only = ON"]  # implies read_only = ON
        return ["SET GLOBAL read_only = ON"]

    @property
    def unfence(self) -> list[str]:
        if self.flavor == "mysql" and self.version >= (5, 7, 8):
            return ["SET GLOBAL super_read_only = OFF", "SET GLOBAL read_only = OFF"]
        return ["SET GLOBAL read_only = OFF"]

    @property
    def reset_replica(self) -> str:
        """Forget the replication source entirely (after STOP): the promoted server replicates from nobody."""
        return "RESET REPLICA ALL" if self.replica_words else "RESET SLAVE ALL"

    @property
    def reset_binlog(self) -> str:
        """Empty the binary log and its GTID history (a re-seed: the errant transactions go with it). MySQL 8.2
        renamed RESET MASTER, and 8.4 no longer has it."""
        if self.flavor == "mysql" and self.version >= (8, 2, 0):
            return "RESET BINARY LOGS AND GTIDS"
        return "RESET MASTER"

    def change_source(self, host: str, port: int, connect_retry: int | None = None,
                      heartbeat_period: float | None = None) -> str:
        """Point a (stopped) replica at `host:port` by GTID; the user and password are bound parameters
        (%s, %s), never part of the text. MariaDB: `slave_pos`, after `adopt_own_history` (a former primary's own
        binlog counts, so it resumes after what it wrote itself); MySQL: auto-position. `connect_retry` and
        `heartbeat_period` carry the replica's own settings over (a re-point must not reset a DBA's tuning)."""
        extra = ""
        if connect_retry is not None:
            extra += f", {'SOURCE' if self._new_change else 'MASTER'}_CONNECT_RETRY={int(connect_retry)}"
        if heartbeat_period is not None:
            extra += f", {'SOURCE' if self._new_change else 'MASTER'}_HEARTBEAT_PERIOD={float(heartbeat_period):g}"
        if self.flavor == "mariadb":
            return (f"CHANGE MASTER TO MASTER_HOST='{_host(host)}', MASTER_PORT={int(port)}, MASTER_USER=%s, "
                    f"MASTER_PASSWORD=%s, MASTER_USE_GTID=slave_pos{extra}")
        if self._new_change:
            return (f"CHANGE REPLICATION SOURCE TO SOURCE_HOST='{_host(host)}', SOURCE_PORT={int(port)}, "
                    f"SOURCE_USER=%s, SOURCE_PASSWORD=%s, SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1{extra}")
        return (f"CHANGE MASTER TO MASTER_HOST='{_host(host)}', MASTER_PORT={int(port)}, MASTER_USER=%s, "
                f"MASTER_PASSWORD=%s, MASTER_AUTO_POSITION=1{extra}")

    @property
    def _new_change(self) -> bool:
        return self.flavor == "mysql" and self.version >= (8, 0, 23)

    @property
    def adopt_own_history(self) -> list[str]:
        """Before re-pointing a server that wrote as a primary (MariaDB): its replication position becomes everything
        it holds — applied or written itself (gtid_current_pos) — so it asks the new source only for what it
        lacks, and the setting stays the lab's and the KB's usual `slave_pos`. MySQL's gtid_executed already is
        that."""
        if self.flavor == "mariadb":
            return ["SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_current_pos"]
        return []

    @property
    def applied_gtid(self) -> str:
        """What the replica's SQL thread has applied (the received side is in its status: MariaDB's Gtid_IO_Pos,
        MySQL's Retrieved_Gtid_Set). Drain = wait until the applied side holds the received one."""
        return "SELECT @@GLOBAL.gtid_slave_pos AS pos" if self.flavor == "mariadb" \
            else "SELECT @@GLOBAL.gtid_executed AS pos"

    @property
    def last_gtid(self) -> str:
        return "SELECT @@last_gtid AS gtid" if self.flavor == "mariadb" else "SELECT @@GLOBAL.gtid_executed AS gtid"


def _host(host: str) -> str:
    """A replication host for a CHANGE statement: an address or DNS name only (the inventory checked it)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.:-]{0,252}", host):
        raise ValueError(f"not a host name or address: {host[:60]!r}")
    return host


def parse_version(text: str) -> Dialect:
    """`10.11.19-MariaDB-0+deb12u1` or `8.0.36` / `8.0.36-0ubuntu0.22.04.1` → Dialect."""
    m = re.match(r"(\d+)\.(\d+)\.(\d+)", text or "")
    if not m:
        raise ValueError(f"cannot read server version {text!r}")
    version = tuple(int(x) for x in m.groups())
    flavor = "mariadb" if "mariadb" in text.lower() else "mysql"
    return Dialect(flavor, version)  # type: ignore[arg-type]
