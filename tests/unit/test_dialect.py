"""replication/dialect.py: which statements each server version gets. Pure: a version string in, SQL out."""
from __future__ import annotations

import pytest

from drpoc_chaos.replication.dialect import Dialect, parse_version

# real `SELECT VERSION()` strings of each family
MARIADB_104 = "10.4.32-MariaDB-1:10.4.32+maria~ubu2004-log"
MARIADB_1011 = "10.11.11-MariaDB-0+deb12u1"
MYSQL_57 = "5.7.44-log"
MYSQL_8021 = "8.0.21"
MYSQL_8022 = "8.0.22-0ubuntu0.20.04.2"
MYSQL_8023 = "8.0.23"
MYSQL_84 = "8.4.3"

OLD_WORDS = ("SHOW SLAVE STATUS", "STOP SLAVE", "START SLAVE")
NEW_WORDS = ("SHOW REPLICA STATUS", "STOP REPLICA", "START REPLICA")
CHANGE_MASTER = "CHANGE MASTER TO MASTER_CONNECT_RETRY=7"
CHANGE_SOURCE = "CHANGE REPLICATION SOURCE TO SOURCE_CONNECT_RETRY=7"


def words(d: Dialect) -> tuple[str, str, str]:
    return d.show_status, d.stop, d.start


@pytest.mark.parametrize("text, flavor, version", [
    (MARIADB_104, "mariadb", (10, 4, 32)),
    (MARIADB_1011, "mariadb", (10, 11, 11)),
    (MYSQL_57, "mysql", (5, 7, 44)),
    (MYSQL_8021, "mysql", (8, 0, 21)),
    (MYSQL_8022, "mysql", (8, 0, 22)),
    (MYSQL_8023, "mysql", (8, 0, 23)),
    (MYSQL_84, "mysql", (8, 4, 3)),
    ("11.4.2-MariaDB", "mariadb", (11, 4, 2)),
    ("10.6.18-mariadb-log", "mariadb", (10, 6, 18)),  # case-insensitive flavor
])
def test_parse_version(text, flavor, version):
    assert parse_version(text) == Dialect(flavor, version)


@pytest.mark.parametrize("text", ["", None, "MariaDB", "8.0", "v8.0.36", "unknown"])
def test_parse_version_refuses_what_it_cannot_read(text):
    with pytest.raises(ValueError, match="cannot read server version"):
        parse_version(text)


@pytest.mark.parametrize("text, expected", [
    (MARIADB_104, OLD_WORDS),
    ("10.5.0-MariaDB", OLD_WORDS),        # REPLICA arrived in 10.5.1
    ("10.5.1-MariaDB", NEW_WORDS),
    (MARIADB_1011, NEW_WORDS),
    (MYSQL_57, OLD_WORDS),
    (MYSQL_8021, OLD_WORDS),
    (MYSQL_8022, NEW_WORDS),              # REPLICA arrived in 8.0.22
    (MYSQL_8023, NEW_WORDS),
    (MYSQL_84, NEW_WORDS),                # 8.4 removed the SLAVE words altogether
])
def test_status_and_thread_statements(text, expected):
    d = parse_version(text)
    assert words(d) == expected
    assert d.replica_words is (expected == NEW_WORDS)


@pytest.mark.parametrize("text, expected", [
    (MARIADB_104, CHANGE_MASTER),
    (MARIADB_1011, CHANGE_MASTER),        # MariaDB never adopted CHANGE REPLICATION SOURCE
    (MYSQL_57, CHANGE_MASTER),
    (MYSQL_8021, CHANGE_MASTER),
    (MYSQL_8022, CHANGE_MASTER),          # REPLICA words in 8.0.22, but CHANGE REPLICATION SOURCE only in 8.0.23
    (MYSQL_8023, CHANGE_SOURCE),
    (MYSQL_84, CHANGE_SOURCE),            # CHANGE MASTER is gone in 8.4
])
def test_set_connect_retry(text, expected):
    assert parse_version(text).set_connect_retry(7) == expected


def test_set_connect_retry_only_takes_integers():
    d = parse_version(MYSQL_84)
    assert d.set_connect_retry("5") == "CHANGE REPLICATION SOURCE TO SOURCE_CONNECT_RETRY=5"
    with pytest.raises(ValueError):
        d.set_connect_retry("5; DROP TABLE testdb.ping")


@pytest.mark.parametrize("text", [MARIADB_104, MARIADB_1011])
def test_mariadb_gtid_statements(text):
    d = parse_version(text)
    assert d.executed_gtid == "SELECT @@GLOBAL.gtid_binlog_pos AS pos"
    assert d.gtid_wait() == "SELECT MASTER_GTID_WAIT(%s, %s) AS r"
    assert d.last_gtid == "SELECT @@last_gtid AS gtid"


@pytest.mark.parametrize("text", [MYSQL_57, MYSQL_8021, MYSQL_8022, MYSQL_8023, MYSQL_84])
def test_mysql_gtid_statements(text):
    d = parse_version(text)
    assert d.executed_gtid == "SELECT @@GLOBAL.gtid_executed AS pos"
    assert d.gtid_wait() == "SELECT WAIT_FOR_EXECUTED_GTID_SET(%s, %s) AS r"
    assert d.last_gtid == "SELECT @@GLOBAL.gtid_executed AS gtid"


@pytest.mark.parametrize("result, done", [(0, True), ("0", True), (-1, False), (1, False), (None, False)])
def test_gtid_wait_done(result, done):
    # MASTER_GTID_WAIT: 0 done, -1 timeout; WAIT_FOR_EXECUTED_GTID_SET: 0 done, 1 timeout; NULL on bad input
    for text in (MARIADB_1011, MYSQL_84):
        assert parse_version(text).gtid_wait_done(result) is done


def test_dialect_is_hashable_and_frozen():
    d = parse_version(MYSQL_84)
    assert {d: 1}[Dialect("mysql", (8, 4, 3))] == 1
    with pytest.raises(AttributeError):
        d.flavor = "mariadb"  # type: ignore[misc]


@pytest.mark.parametrize("version,needle", [
    ("10.11.19-MariaDB-0+deb12u1", "slave_net_timeout"), ("5.7.44-log", "slave_net_timeout"),
    ("8.0.25", "slave_net_timeout"), ("8.0.26", "replica_net_timeout"), ("8.4.3", "replica_net_timeout"),
])
def test_net_timeout_variable_follows_the_rename(version, needle):
    assert needle in parse_version(version).net_timeout


def test_heartbeat_period_source():
    assert "Slave_heartbeat_period" in parse_version("10.11.6-MariaDB").heartbeat_period
    assert "replication_connection_configuration" in parse_version("8.0.36").heartbeat_period
