"""Unit tests for drpoc_chaos.replication.status on recorded outputs: the folders tests/fixtures/mariadb-10.11-lab/,
tests/fixtures/mysql-8.0/, tests/fixtures/mysql-5.6/ and tests/fixtures/mysql-5.1/, each with a provenance note saying
where its files came from."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from drpoc_chaos.replication.status import (
    ReplicaStatusParseError,
    classify_io_error,
    parse_replica_status,
    parse_replica_status_text,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MARIADB = "mariadb-10.11-lab"
TEXT_FIXTURES = sorted(
    p.relative_to(FIXTURES).as_posix()
    for pattern in ("mariadb-*/*.txt", "mysql-*/*.txt")
    for p in FIXTURES.glob(pattern)
)

# Integer columns of SHOW REPLICA/SLAVE STATUS: PyMySQL hands these back as int.
INT_COLUMNS = {
    "Source_Port", "Master_Port", "Connect_Retry", "Read_Source_Log_Pos", "Read_Master_Log_Pos",
    "Relay_Log_Pos", "Last_Errno", "Skip_Counter", "Exec_Source_Log_Pos", "Exec_Master_Log_Pos",
    "Relay_Log_Space", "Until_Log_Pos", "Seconds_Behind_Source", "Seconds_Behind_Master",
    "Last_IO_Errno", "Last_SQL_Errno", "Source_Server_Id", "Master_Server_Id", "SQL_Delay",
    "SQL_Remaining_Delay", "Source_Retry_Count", "Master_Retry_Count", "Auto_Position",
    "Get_Source_public_key", "Slave_DDL_Groups", "Slave_Non_Transactional_Groups",
    "Slave_Transactional_Groups",
}


def read(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def as_dictcursor_row(name: str, *, as_bytes: bool = False) -> dict:
    """The row PyMySQL's DictCursor would return for a recorded \\G text (read independently)."""
    row = {}
    for line in read(name).splitlines():
        m = re.match(r"^\s*([A-Za-z][A-Za-z0-9_]*):(?: (.*))?$", line)
        if not m:
            continue
        value = (m.group(2) or "").strip()
        if value == "NULL":
            row[m.group(1)] = None
        elif m.group(1) in INT_COLUMNS:
            row[m.group(1)] = int(value)
        else:
            row[m.group(1)] = value.encode() if as_bytes else value
    return row


def test_fixture_set_is_not_empty():
    assert len(TEXT_FIXTURES) == 8


@pytest.mark.parametrize("name", TEXT_FIXTURES)
def test_every_text_fixture_parses_and_round_trips(name):
    status = parse_replica_status_text(read(name))
    assert status is not None and status.configured is True
    data = status.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["raw"]["Last_IO_Error"] == status.last_io_error


@pytest.mark.parametrize("name", TEXT_FIXTURES)
@pytest.mark.parametrize("as_bytes", [False, True])
def test_dictcursor_row_gives_the_same_status_as_the_text(name, as_bytes):
    from_text = parse_replica_status_text(read(name))
    from_row = parse_replica_status(as_dictcursor_row(name, as_bytes=as_bytes))
    assert from_row.to_dict() == from_text.to_dict()


# --- MariaDB 10.11, lab ---------------------------------------------------------------------------

def test_mariadb_up():
    s = parse_replica_status_text(read(f"{MARIADB}/mariadb-10.11-slave-status-up.txt"))
    assert (s.flavor, s.naming) == ("mariadb", "slave")
    assert (s.io_running, s.sql_running, s.seconds_behind_source) == ("Yes", "Yes", 0)
    assert s.threads_running is True and s.io_connecting is False
    assert (s.source_host, s.source_port, s.source_user) == ("10.20.11.123", 3306, "repl")
    assert (s.connect_retry, s.source_server_id) == (2, 1)
    assert (s.using_gtid, s.gtid_io_pos) == ("Slave_Pos", "0-1-7")
    assert (s.retrieved_gtid_set, s.executed_gtid_set) == (None, None)
    assert (s.source_log_file, s.read_source_log_pos, s.exec_source_log_pos) == ("mysql-bin.000001", 1673, 1673)
    assert (s.relay_log_space, s.relay_source_log_file) == (2198, "mysql-bin.000001")
    assert s.io_state == "Waiting for master to send event"
    assert s.sql_state == "Slave has read all relay log; waiting for more updates"
    assert (s.last_io_errno, s.last_io_error, s.last_sql_errno, s.last_sql_error) == (0, "", 0, "")
    assert classify_io_error(s.last_io_errno, s.last_io_error) == "none"
    assert s.raw["Replicate_Do_DB"] == "" and s.raw["SQL_Remaining_Delay"] is None


def test_mariadb_first_sample_after_the_cut_is_connecting_without_error():
    s = parse_replica_status_text(read(f"{MARIADB}/mariadb-10.11-slave-status-connecting-first.txt"))
    assert (s.io_running, s.sql_running, s.seconds_behind_source) == ("Connecting", "Yes", None)
    assert s.io_connecting is True and s.threads_running is False
    assert s.io_state == "Reconnecting after a failed master event read"
    assert (s.last_io_errno, classify_io_error(s.last_io_errno, s.last_io_error)) == (0, "none")


@pytest.mark.parametrize("moment", ["outage", "outage-late"])
def test_mariadb_outage_is_a_timeout(moment):
    s = parse_replica_status_text(read(f"{MARIADB}/mariadb-10.11-slave-status-{moment}.txt"))
    assert (s.io_running, s.seconds_behind_source, s.last_io_errno) == ("Connecting", None, 2003)
    assert s.last_io_error == (
        "error reconnecting to master 'repl@10.20.11.123:3306' - retry-time: 2  maximum-retries: 100000  "
        "message: Can't connect to server on '10.20.11.123' (110 \"Connection timed out\")")
    assert classify_io_error(s.last_io_errno, s.last_io_error) == "timeout"


def test_mariadb_recovered():
    s = parse_replica_status_text(read(f"{MARIADB}/mariadb-10.11-slave-status-recovered.txt"))
    assert s.threads_running is True
    assert (s.gtid_io_pos, s.read_source_log_pos, s.relay_log_space) == ("0-1-8", 1933, 2795)
    assert s.raw["Slave_Transactional_Groups"] == "2"


# --- MySQL ----------------------------------------------------------------------------------------

def test_mysql_8_replica_naming_with_gtid():
    s = parse_replica_status_text(read("mysql-8.0/mysql-8.0-replica-status-gtid-running.txt"))
    assert (s.flavor, s.naming) == ("mysql", "replica")
    assert (s.io_running, s.sql_running, s.seconds_behind_source) == ("Yes", "Yes", 0)
    assert (s.source_host, s.source_port, s.source_user, s.connect_retry) == ("127.0.0.1", 13000, "root", 1)
    assert (s.source_retry_count, s.source_server_id) == (10, 1)
    assert s.source_uuid == "73f86016-978b-11ee-ade5-8d2a2a562feb"
    assert s.retrieved_gtid_set == s.executed_gtid_set == "73f86016-978b-11ee-ade5-8d2a2a562feb:1-3"
    assert (s.using_gtid, s.gtid_io_pos) == ("Auto_Position", None)
    assert (s.source_log_file, s.read_source_log_pos, s.exec_source_log_pos) == ("master-bin.000001", 927, 927)
    assert s.io_state == "Waiting for source to send event"
    assert s.sql_state == "Replica has read all relay log; waiting for more updates"
    assert s.channel_name == ""


def test_mysql_56_slave_naming():
    s = parse_replica_status_text(read("mysql-5.6/mysql-5.6-slave-status-running.txt"))
    assert (s.flavor, s.naming, s.using_gtid) == ("mysql", "slave", "No")
    assert (s.source_host, s.source_retry_count, s.relay_log_space) == ("master", 86400, 458)
    assert s.source_uuid == "4c844dec-5541-11e7-8420-0a54ade845dc"
    assert s.sql_state == "Slave has read all relay log; waiting for the slave I/O thread to update it"
    assert s.threads_running is True


def test_mysql_51_io_thread_stopped_with_wrapped_paste():
    s = parse_replica_status_text(read("mysql-5.1/mysql-5.1-slave-status-io-no-2013-terminal-wrapped.txt"))
    assert (s.io_running, s.sql_running, s.seconds_behind_source) == ("No", "Yes", None)
    assert s.threads_running is False and s.io_connecting is False
    assert s.io_state == "Connecting to master"
    assert s.source_host == "ip-10-0-0-122.ap-southeast-1.comp           ute.internal"  # verbatim paste
    assert (s.last_io_errno, classify_io_error(s.last_io_errno, s.last_io_error)) == (2013, "other")
    # Columns MySQL 5.1 did not have yet are absent, not invented.
    assert (s.sql_state, s.using_gtid, s.source_server_id, s.source_retry_count) == ("", None, None, None)


# --- None, errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("row", [None, {}])
def test_no_row_means_not_configured(row):
    assert parse_replica_status(row) is None


@pytest.mark.parametrize("text", ["", "\n", "Empty set (0.00 sec)\n"])
def test_empty_text_means_not_configured(text):
    assert parse_replica_status_text(text) is None


def test_missing_columns_are_named():
    row = as_dictcursor_row(f"{MARIADB}/mariadb-10.11-slave-status-up.txt")
    del row["Slave_IO_Running"], row["Seconds_Behind_Master"]
    with pytest.raises(ReplicaStatusParseError) as excinfo:
        parse_replica_status(row)
    message = str(excinfo.value)
    assert "Replica_IO_Running (or Slave_IO_Running)" in message
    assert "Seconds_Behind_Source (or Seconds_Behind_Master)" in message


def test_a_row_of_something_else_is_refused():
    with pytest.raises(ReplicaStatusParseError, match="missing column"):
        parse_replica_status({"File": "mysql-bin.000001", "Position": 1673})


@pytest.mark.parametrize("text", [
    "hello world\n",
    "ERROR 1227 (42000): Access denied; you need (at least one of) the SUPER, REPLICATION CLIENT "
    "privilege(s) for this operation\n",
])
def test_garbage_and_error_text_are_refused(text):
    with pytest.raises(ReplicaStatusParseError):
        parse_replica_status_text(text)


def test_two_rows_are_refused():
    one = read("mysql-8.0/mysql-8.0-replica-status-gtid-running.txt")
    two = one + one.replace("1. row", "2. row")
    with pytest.raises(ReplicaStatusParseError, match="2 rows"):
        parse_replica_status_text(two)


def test_impossible_values_are_refused():
    row = as_dictcursor_row(f"{MARIADB}/mariadb-10.11-slave-status-up.txt")
    with pytest.raises(ReplicaStatusParseError, match="Master_Port"):
        parse_replica_status({**row, "Master_Port": "three thousand"})
    with pytest.raises(ReplicaStatusParseError, match="Slave_IO_Running"):
        parse_replica_status({**row, "Slave_IO_Running": "Maybe"})


def test_client_decorations_are_accepted():
    text = read("mysql-8.0/mysql-8.0-replica-status-gtid-running.txt")
    decorated = text + "1 row in set (0.00 sec)\n\nERROR:\nNo query specified\n"
    assert parse_replica_status_text(decorated).to_dict() == parse_replica_status_text(text).to_dict()


def test_multi_line_gtid_set_is_joined_like_the_server_returns_it():
    # The client prints one UUID per line; derived from the MySQL 8.0 fixture.
    text = read("mysql-8.0/mysql-8.0-replica-status-gtid-running.txt").replace(
        "Executed_Gtid_Set: 73f86016-978b-11ee-ade5-8d2a2a562feb:1-3",
        "Executed_Gtid_Set: 4c844dec-5541-11e7-8420-0a54ade845dc:1-5,\n73f86016-978b-11ee-ade5-8d2a2a562feb:1-3")
    s = parse_replica_status_text(text)
    assert s.executed_gtid_set == "4c844dec-5541-11e7-8420-0a54ade845dc:1-5,\n73f86016-978b-11ee-ade5-8d2a2a562feb:1-3"


# --- classify_io_error ----------------------------------------------------------------------------

@pytest.mark.parametrize(("errno", "message", "expected"), [
    (0, "", "none"),
    (None, None, "none"),
    (2003, "error reconnecting to master 'repl@10.20.11.123:3306' - retry-time: 2  maximum-retries: 100000  "
           "message: Can't connect to server on '10.20.11.123' (110 \"Connection timed out\")", "timeout"),
    ("2003", "Can't connect to MySQL server on '10.20.11.123:3306' (110)", "timeout"),
    (2003, "Can't connect to MySQL server on '10.20.11.123:3306' (111)", "refused"),
    (2003, "Can't connect to server on '10.20.11.123' (111 \"Connection refused\")", "refused"),
    (2003, "Can't connect to server on '10.20.11.123' (113 \"No route to host\")", "no-route"),
    (113, "", "no-route"),
    (110, "", "timeout"),
    (1045, "Access denied for user 'repl'@'192.168.64.15' (using password: YES)", "auth"),
    (2061, "Authentication plugin 'caching_sha2_password' reported error: Authentication requires secure connection.",
     "auth"),
    (2005, "Unknown MySQL server host 'aws-db' (-2)", "dns"),
    (2013, "error connecting to master 'root@           ip-10-0-0-122.ap-southeast-1.compute.internal:3306' - "
           "retry-time           : 60  retries: 86400", "other"),
    (1236, "Got fatal error 1236 from master when reading data from binary log", "other"),
])
def test_classify_io_error(errno, message, expected):
    assert classify_io_error(errno, message) == expected
