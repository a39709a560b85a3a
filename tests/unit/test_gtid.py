"""MariaDB GTID positions and errant transactions (core.gtid), and the statements that move the writer
(replication.dialect) for MariaDB and MySQL — pure, no server."""
from __future__ import annotations

import pytest

from drpoc_chaos.core.gtid import Gtid, errant, format_position, parse_position, reached
from drpoc_chaos.replication.dialect import parse_version

MARIADB = parse_version("10.11.19-MariaDB-0+deb12u1")
MYSQL8 = parse_version("8.0.36")
MYSQL57 = parse_version("5.7.44-log")


def test_positions_parse_and_print():
    pos = parse_position("0-1-1050,1-2-7")
    assert pos == {0: Gtid(0, 1, 1050), 1: Gtid(1, 2, 7)}
    assert format_position(pos) == "0-1-1050,1-2-7"
    assert parse_position("") == {} and parse_position(None) == {}
    for bad in ("0-1", "a-b-c", "0-1-2;DROP", "0-1-5,0-2-6"):
        with pytest.raises(ValueError):
            parse_position(bad)


def test_reached_compares_every_domain():
    assert reached(parse_position("0-2-1050,1-1-9"), parse_position("0-1-1047"))
    assert not reached(parse_position("0-2-1046"), parse_position("0-1-1047"))
    assert not reached(parse_position("0-1-1050"), parse_position("0-1-10,1-1-1"))
    assert reached(parse_position("0-1-1"), {})


def test_errant_are_the_old_primarys_writes_after_the_fork():
    old, fork = parse_position("0-1-1050"), parse_position("0-1-1047")
    assert [str(g) for g in errant(old, fork)] == ["0-1-1048", "0-1-1049", "0-1-1050"]
    assert errant(parse_position("0-1-1047"), fork) == []
    assert errant(parse_position("0-1-1040"), fork) == []  # behind the fork: nothing of its own
    # a domain the promoted replica never saw: all of it is errant
    assert [str(g) for g in errant(parse_position("0-1-3,5-1-2"), parse_position("0-1-3"))] == ["5-1-1", "5-1-2"]
    with pytest.raises(ValueError):
        errant(parse_position("0-1-5000000"), parse_position("0-1-1"))


@pytest.mark.parametrize("dialect, fence, unfence", [
    (MARIADB, ["SET GLOBAL read_only = ON"], ["SET GLOBAL read_only = OFF"]),
    (MYSQL8, ["SET GLOBAL super_read_only = ON"], ["SET GLOBAL super_read_only = OFF", "SET GLOBAL read_only = OFF"]),
    (MYSQL57, ["SET GLOBAL super_read_only = ON"], ["SET GLOBAL super_read_only = OFF", "SET GLOBAL read_only = OFF"]),
])
def test_fencing_statements(dialect, fence, unfence):
    assert dialect.fence == fence and dialect.unfence == unfence
    assert "read_only AS ro" in dialect.writable and "AS sro" in dialect.writable


def test_pointing_a_replica_by_gtid_binds_the_credentials():
    maria = MARIADB.change_source("192.168.64.15", 3306)
    assert maria.startswith("CHANGE MASTER TO MASTER_HOST='192.168.64.15', MASTER_PORT=3306")
    assert "MASTER_USER=%s, MASTER_PASSWORD=%s" in maria and maria.endswith("MASTER_USE_GTID=slave_pos")
    mysql = MYSQL8.change_source("db.example.com", 3307)
    assert mysql.startswith("CHANGE REPLICATION SOURCE TO SOURCE_HOST='db.example.com', SOURCE_PORT=3307")
    assert "SOURCE_USER=%s, SOURCE_PASSWORD=%s, SOURCE_AUTO_POSITION=1" in mysql
    assert "MASTER_AUTO_POSITION=1" in MYSQL57.change_source("10.0.0.1", 3306)
    for bad in ("db'; DROP TABLE x; --", "-h", "a b"):
        with pytest.raises(ValueError):
            MARIADB.change_source(bad, 3306)
    assert MARIADB.reset_replica == "RESET REPLICA ALL" and MYSQL57.reset_replica == "RESET SLAVE ALL"


def test_a_repoint_keeps_the_replicas_own_retry_and_heartbeat():
    maria = MARIADB.change_source("10.20.11.123", 3306, connect_retry=2, heartbeat_period=1.5)
    assert maria.endswith("MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=2, MASTER_HEARTBEAT_PERIOD=1.5")
    mysql = MYSQL8.change_source("10.0.0.1", 3306, connect_retry=10, heartbeat_period=5)
    assert mysql.endswith("SOURCE_CONNECT_RETRY=10, SOURCE_HEARTBEAT_PERIOD=5")
    assert MYSQL57.change_source("10.0.0.1", 3306, connect_retry=10).endswith("MASTER_CONNECT_RETRY=10")
    # a former MariaDB primary asks only for what it lacks: its own binlog becomes its replication position
    assert MARIADB.adopt_own_history == ["SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_current_pos"]
    # a re-seed empties the old primary's binary log history: MySQL 8.4 has no RESET MASTER any more
    assert MARIADB.reset_binlog == "RESET MASTER" and MYSQL57.reset_binlog == "RESET MASTER"
    assert MYSQL8.reset_binlog == "RESET MASTER"  # 8.0.36
    assert parse_version("8.4.8").reset_binlog == "RESET BINARY LOGS AND GTIDS"
    assert MYSQL8.adopt_own_history == []


# --- split brain: more than one writable server in the timeline fails the drill ------------------------------------

def _journal(samples):
    from drpoc_chaos.core.verdict import Verdict
    return {"status": "completed", "steady_states": {"before": {"steady_state_met": True}},
            "drpoc": {"events": [{"name": "fault_injected"}, {"name": "outage_detected"}],
                      "writes": {"lost": [], "unexpected": [], "duplicated": []},
                      "settings": {"expect_outage": True}, "objectives": {"max_lost_writes": 0},
                      "timeline": {"samples": samples},
                      "verdict": Verdict(True, "passed", []).to_dict()}}


def test_two_writable_servers_in_the_timeline_is_split_brain():
    from drpoc_chaos.core.verdict import facts_from_journal, judge, split_brain_times
    calm = [{"t": 0.0, "writers": 1}, {"t": 0.5, "writers": 1}, {"t": 1.0, "writers": None}]
    assert split_brain_times(calm) == [] and judge(facts_from_journal(_journal(calm))).passed
    broken = calm + [{"t": 1.5, "writers": 2}, {"t": 2.0, "writers": 2}, {"t": 2.5, "writers": 1}]
    assert split_brain_times(broken) == [1.5, 2.0]
    v = judge(facts_from_journal(_journal(broken)))
    assert not v.passed and v.status == "failed"
    assert v.reasons == ["split brain: source and replica both writable in 2 timeline sample(s), first at t=1.5s "
                         "— the replica must stay read-only while the source lives"]
    # junk in an untrusted journal is not a writer count
    assert split_brain_times([{"t": 1, "writers": True}, {"t": "x", "writers": 2}, "nope", {"writers": 3}]) == []
