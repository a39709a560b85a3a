"""Where an interrupted site failover stands and its one next step back (core.failover.next_step), pure; and the
re-seed's pure parts (services/reseed.py): the GTID position of a recorded dump, the option file, the command."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from drpoc_chaos.core.failover import CANONICAL, PairState, next_step
from drpoc_chaos.inventory.models import MysqlEndpoint, MysqlTls
from drpoc_chaos.services import reseed
from drpoc_chaos.services.errors import StepFailed

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def state(**kw) -> PairState:
    base = dict(source_reachable=True, source_writable=True, source_replicates=False, replica_writable=False,
                replica_replicates=True, replica_own_writes=False)
    base.update(kw)
    return PairState(**base)


@pytest.mark.parametrize("kw, step", [
    ({}, CANONICAL),
    ({"source_reachable": False, "source_writable": None, "source_replicates": None}, "bring-source-back"),
    # lost and back, nothing promoted: the source takes the writes again
    ({"source_writable": False}, "unfence-source"),
    # someone made the replica writable but it never left replication: fence it, never the source
    ({"replica_writable": True}, "fence-replica"),
    # promotion interrupted after STOP/RESET but before any write: put it back under the source
    ({"source_writable": False, "replica_replicates": False}, "undo-promotion"),
    ({"replica_replicates": False, "replica_writable": True}, "fence-replica"),
    # promoted and written to: the old primary is fenced first, then reconciled
    ({"replica_replicates": False, "replica_writable": True, "replica_own_writes": True}, "fence-source"),
    ({"source_writable": False, "replica_replicates": False, "replica_writable": True, "replica_own_writes": True},
     "reconcile-source"),
    # a botched re-point made the promoted server a replica again: its own writes still count
    ({"source_writable": False, "replica_own_writes": True}, "reconcile-source"),
    # re-pointed under the promoted replica: only the switchover is left ...
    ({"source_writable": False, "source_replicates": True, "replica_replicates": False, "replica_writable": True,
      "replica_own_writes": True}, "switch-back"),
    # ... unless it cannot apply the new primary's writes (errant GTIDs): count again, re-seed
    ({"source_writable": False, "source_replicates": True, "source_replication_broken": True,
      "replica_replicates": False, "replica_writable": True, "replica_own_writes": True}, "reconcile-source"),
    # the switchover began: own writes from the fork no longer mean anything
    ({"switching": True, "source_writable": False, "source_replicates": True, "replica_replicates": False,
      "replica_own_writes": True}, "switch-back"),
    ({"switching": True, "replica_replicates": False, "replica_own_writes": True}, "repoint-replica"),
    ({"switching": True, "replica_writable": True, "replica_replicates": False}, "fence-replica"),
    ({"switching": True, "source_writable": False}, "unfence-source"),
    ({"switching": True}, CANONICAL),
])
def test_each_state_has_one_next_step(kw, step):
    assert next_step(state(**kw)) == step


def test_no_state_unfences_a_server_while_the_other_is_writable():
    """Safety over every combination: `unfence-source` only when the replica is fenced; the replica is never
    unfenced by a recovery at all."""
    fields = ["source_writable", "source_replicates", "replica_writable", "replica_replicates", "replica_own_writes",
              "switching", "source_replication_broken"]
    for values in itertools.product([False, True], repeat=len(fields)):
        s = state(**dict(zip(fields, values, strict=True)))
        step = next_step(s)
        if step == "unfence-source":
            assert not s.replica_writable, s
        if step == CANONICAL:
            assert s.source_writable and not s.replica_writable and s.replica_replicates, s


# --- the re-seed's dump ----------------------------------------------------------------------------------------

def test_the_gtid_position_of_a_recorded_mariadb_dump():
    text = (FIXTURES / "mariadb-10.11-dump-gtid" / "dump-drpoc.sql").read_text()
    assert reseed.position_from_dump(text, "mariadb") == "0-1-73102"
    with pytest.raises(StepFailed, match="no GTID position"):
        reseed.position_from_dump(text.replace("gtid_slave_pos", "nothing"), "mariadb")


def test_the_gtid_set_of_a_recorded_mysql_dump():
    # mysqldump --set-gtid-purged=ON (client 8.0, server 8.4): the set spans lines, one per server UUID
    text = (FIXTURES / "mysql-8.4-dump-gtid" / "dump-header.sql").read_text()
    assert reseed.position_from_dump(text, "mysql") == \
        "916941de-9c55-11f1-8057-926cb20853d9:1-761,a849f9cd-9d43-11f1-b163-f2b10cab70b0:1-17"
    # --set-gtid-purged=COMMENTED writes it as a comment: not a position to rely on
    with pytest.raises(StepFailed):
        reseed.position_from_dump(text.replace("SET @@GLOBAL.GTID_PURGED", "-- SET @@GLOBAL.GTID_PURGED"), "mysql")


def _ep(**kw) -> MysqlEndpoint:
    base = dict(site="dc1", role="replica", host="db1", address="10.0.0.5", port=3307, user="drill",
                password_ref={"env": "X"}, database=None, connect_timeout=5)
    base.update(kw)
    return MysqlEndpoint(**base)


def test_the_password_goes_to_an_option_file_never_the_command_line(tmp_path):
    text = reseed.option_file_text(_ep(ssl=MysqlTls(ca="/etc/ca.pem", cert="/c.pem", key="/k.pem")), "s3cr3t pw")
    assert 'password="s3cr3t pw"' in text and 'host="10.0.0.5"' in text and "port=3307" in text
    assert 'ssl-ca="/etc/ca.pem"' in text and "ssl-verify-server-cert" in text
    cmd = reseed.dump_command("/usr/bin/mariadb-dump", tmp_path / "new.cnf", "mariadb", ["shop", "testdb"])
    assert "s3cr3t" not in " ".join(cmd) and cmd[1] == f"--defaults-extra-file={tmp_path / 'new.cnf'}"
    assert {"--single-transaction", "--gtid", "--master-data=2", "--routines", "--triggers"} <= set(cmd)
    assert cmd[-3:] == ["--databases", "shop", "testdb"]
    assert "--set-gtid-purged=ON" in reseed.dump_command("mysqldump", tmp_path / "n.cnf", "mysql", ["shop"])
    assert reseed.option_file_text(_ep(option_file="/etc/drill.cnf"), "").startswith("!include /etc/drill.cnf\n")


@pytest.mark.parametrize("bad", ['a"b', "a\nb", "a\\b"])
def test_a_value_the_option_file_cannot_hold_is_refused(bad):
    with pytest.raises(StepFailed, match="option file"):
        reseed.option_file_text(_ep(), bad)


def test_the_failover_hold_counts_from_an_event_named_plainly():
    from chaoslib.exceptions import ActivityFailed

    from drpoc_chaos.drill.actions import hold_outage
    assert hold_outage(0, since="promoted") == {"waited_seconds": 0, "outage_held_seconds": 0, "since": "promoted"}
    for bad in ("Promoted", "promoted;x", "", 3):
        with pytest.raises(ActivityFailed, match="since must be an event name"):
            hold_outage(0, since=bad)
