"""Replica threads pinned to both threads (mutation-killing tests).

"Running" means the IO thread `Yes` AND the SQL thread `Yes`. A check that ignores the SQL thread (a replica whose
applier stopped on a duplicate key still shows IO `Yes`), or takes IO `Connecting` for running, passed the rest of
the unit suite; these tests do not let it.

Every status comes from a recorded `SHOW SLAVE/REPLICA STATUS\\G` (tests/fixtures/mariadb-10.11-lab, mysql-8.0,
mysql-5.1) read by the real parser; the IO-Yes/SQL-No, Preparing and No/No cases are the recorded MariaDB "up" output
with those lines changed (each edit checks that the recorded line is there). The probes are run with only the SQL
call replaced (`sql` as services.replica imported it): it answers `SELECT VERSION()` and the status statement with
the recorded row, so the dialect, the parser and the probe all run for real.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from drpoc_chaos.replication import probes
from drpoc_chaos.replication.status import ReplicaStatus, parse_replica_status_text
from drpoc_chaos.services import replica as replica_service

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
INVENTORY = str(Path(__file__).resolve().parent / "inventories" / "lab.yaml")
CONFIG = {"inventory": INVENTORY}

MARIADB_UP = "mariadb-10.11-lab/mariadb-10.11-slave-status-up.txt"
MYSQL8_UP = "mysql-8.0/mysql-8.0-replica-status-gtid-running.txt"
VERSIONS = {MARIADB_UP: "10.11.6-MariaDB-0+deb12u1-log", MYSQL8_UP: "8.0.36"}

DUP_KEY = ("Could not execute Write_rows_v1 event on table testdb.ping; Duplicate entry '9' for key 'PRIMARY', "
           "Error_code: 1062; handler error HA_ERR_FOUND_DUPP_KEY; the event's master log mysql-bin.000001, "
           "end_log_pos 1904")


def _read(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def _edit(text: str, column: str, value: str) -> str:
    """Set `column` of a recorded \\G text to `value`, keeping the client's alignment."""
    lines = text.splitlines(keepends=True)
    hits = [i for i, line in enumerate(lines) if line.strip().startswith(f"{column}:")]
    assert len(hits) == 1, f"the recorded fixture changed: column {column} is not there exactly once"
    i = hits[0]
    head = lines[i].split(":", 1)[0]
    lines[i] = f"{head}: {value}\n"
    return "".join(lines)


def sql_stopped(name: str = MARIADB_UP) -> str:
    """The SQL (applier) thread stopped on a duplicate key while the IO thread stays connected (the server then
    shows Seconds_Behind NULL)."""
    mariadb = name.startswith("mariadb")
    text = _read(name)
    text = _edit(text, "Seconds_Behind_Master" if mariadb else "Seconds_Behind_Source", "NULL")
    text = _edit(text, "Slave_SQL_Running" if mariadb else "Replica_SQL_Running", "No")
    text = _edit(text, "Last_Errno", "1062")
    text = _edit(text, "Last_Error", DUP_KEY)
    text = _edit(text, "Last_SQL_Errno", "1062")
    text = _edit(text, "Last_SQL_Error", DUP_KEY)
    return _edit(text, "Slave_SQL_Running_State" if mariadb else "Replica_SQL_Running_State", "")


# name -> (text, IO, SQL, running)
CASES = {
    "mariadb-up (recorded)": (lambda: _read(MARIADB_UP), "Yes", "Yes", True),
    "mariadb-recovered (recorded)": (lambda: _read("mariadb-10.11-lab/mariadb-10.11-slave-status-recovered.txt"),
                                     "Yes", "Yes", True),
    "mysql-8.0-up (recorded)": (lambda: _read(MYSQL8_UP), "Yes", "Yes", True),
    "mariadb-io-connecting-sql-yes (recorded, first sample after the cut)": (
        lambda: _read("mariadb-10.11-lab/mariadb-10.11-slave-status-connecting-first.txt"), "Connecting", "Yes", False),
    "mariadb-io-connecting-sql-yes (recorded, outage)": (
        lambda: _read("mariadb-10.11-lab/mariadb-10.11-slave-status-outage.txt"), "Connecting", "Yes", False),
    "mysql-5.1-io-no-sql-yes (recorded)": (
        lambda: _read("mysql-5.1/mysql-5.1-slave-status-io-no-2013-terminal-wrapped.txt"), "No", "Yes", False),
    "mariadb-io-yes-sql-no": (lambda: sql_stopped(MARIADB_UP), "Yes", "No", False),
    "mysql-8.0-io-yes-sql-no": (lambda: sql_stopped(MYSQL8_UP), "Yes", "No", False),
    "mariadb-io-preparing-sql-yes": (lambda: _edit(_read(MARIADB_UP), "Slave_IO_Running", "Preparing"),
                                     "Preparing", "Yes", False),
    "mariadb-io-no-sql-no": (lambda: _edit(_edit(_read(MARIADB_UP), "Slave_IO_Running", "No"),
                                           "Slave_SQL_Running", "No"), "No", "No", False),
    "mariadb-io-connecting-sql-no": (lambda: _edit(sql_stopped(MARIADB_UP), "Slave_IO_Running", "Connecting"),
                                     "Connecting", "No", False),
}
IDS = sorted(CASES)


def status(case: str) -> ReplicaStatus:
    make, io, sql_thread, _ = CASES[case]
    st = parse_replica_status_text(make())
    assert (st.io_running, st.sql_running) == (io, sql_thread)   # the derivation produced what it says
    return st


@pytest.mark.parametrize("case", IDS)
def test_threads_running_property_needs_both_threads(case):
    st = status(case)
    running = CASES[case][3]
    assert st.threads_running is running
    assert st.to_dict()["threads_running"] is running


@pytest.mark.parametrize("case", IDS)
def test_service_threads_running_needs_both_threads(case):
    assert replica_service.threads_running(status(case)) is CASES[case][3]


def test_service_threads_running_without_replication_is_false():
    assert replica_service.threads_running(None) is False


def test_io_yes_sql_no_is_not_running_and_says_why():
    st = status("mariadb-io-yes-sql-no")
    assert st.threads_running is False and st.io_connecting is False
    assert (st.last_sql_errno, st.last_io_errno) == (1062, 0)


# --------------------------------------------------------------------------------------------------------------
# The probes, with only the SQL call replaced


@pytest.fixture
def replica_answers(monkeypatch):
    """Make the replica answer `SELECT VERSION()` and its status statement from a recorded text."""
    state: dict[str, object] = {"text": None, "version": VERSIONS[MARIADB_UP], "asked": []}

    def fake_sql(endpoint, inv, statement, args=None, secrets=None, pool=None):
        state["asked"].append(statement)
        assert endpoint is inv.replica, "only the replica is asked"
        if statement == "SELECT VERSION() AS v":
            return [{"v": state["version"]}]
        if statement in ("SHOW REPLICA STATUS", "SHOW SLAVE STATUS"):
            st = parse_replica_status_text(state["text"]) if state["text"] else None
            return [dict(st.raw)] if st else []       # the row as the server sends it: every column, NULL as None
        raise AssertionError(f"unexpected statement {statement!r}")

    monkeypatch.setattr(replica_service, "sql", fake_sql)
    monkeypatch.setattr(replica_service, "_dialects", {})
    return state


@pytest.mark.parametrize("case", IDS)
def test_replica_threads_running_probe(replica_answers, case):
    replica_answers["text"] = CASES[case][0]()
    if case.startswith("mysql-8.0"):
        replica_answers["version"] = VERSIONS[MYSQL8_UP]
    assert probes.replica_threads_running(configuration=CONFIG) is CASES[case][3]
    assert replica_answers["asked"][-1] == "SHOW REPLICA STATUS"


def test_replica_threads_running_probe_without_replication_is_false(replica_answers):
    replica_answers["text"] = None
    assert probes.replica_threads_running(configuration=CONFIG) is False


@pytest.mark.parametrize("case", ["mariadb-io-yes-sql-no", "mariadb-io-connecting-sql-yes (recorded, outage)",
                                  "mariadb-up (recorded)"])
def test_replica_status_probe_reports_each_thread_and_both(replica_answers, case):
    replica_answers["text"] = CASES[case][0]()
    _, io, sql_thread, running = CASES[case]
    out = probes.replica_status(configuration=CONFIG)
    assert (out["io_running"], out["sql_running"], out["threads_running"]) == (io, sql_thread, running)
    assert "raw" not in out


def test_replication_lag_probe_reports_io_and_sql_each_from_its_own_thread(replica_answers, monkeypatch):
    replica_answers["text"] = sql_stopped(MARIADB_UP)
    monkeypatch.setattr(replica_service, "measure_lag",
                        lambda inv, secrets=None, max_wait=5.0, pool=None, interval=0.01:
                        {"heartbeat_lag": 4.2, "arrived": False})
    out = probes.replication_lag(max_wait=0.5, configuration=CONFIG)
    assert out == {"heartbeat_lag": 4.2, "arrived": False, "seconds_behind_source": None, "io": "Yes", "sql": "No"}
