"""Who may write, on the real lab (the healthy pair's single writer is checked in test_activities.py): a replica
made writable during a drill is split brain and fails it; and the failover primitives — drain, promote, errant
transactions of the old primary — on real MariaDB, put back as they were."""
from __future__ import annotations

import json
import threading
import time

import pytest

from drpoc_chaos.inventory import load_inventory
from drpoc_chaos.lab import configs, faults
from drpoc_chaos.lab.topology import DATABASES, Paths
from drpoc_chaos.replication import actions as rep_actions
from drpoc_chaos.replication import probes as rep_probes
from drpoc_chaos.services import context as services_context
from drpoc_chaos.services import gateway, replica, topology, writer
from drpoc_chaos.vpn import probes as vpn_probes

from .support import CFG, INVENTORY
from .test_drills import on, run_drill

pytestmark = pytest.mark.lab


def replica_sql(healthy_lab, statement: str) -> str:
    return healthy_lab.sql(DATABASES["onprem"]["host"], statement).stdout


def test_a_replica_made_writable_during_a_drill_is_split_brain(ready, tmp_path):
    """Someone turns read_only off on the replica during the outage: the timeline sees two writers and the drill
    fails for it, whatever else went well."""
    lab = ready

    def unfence_during_outage():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if "INSTALLED" not in on("aws-vpn", "ipsec", "statusall", check=False).stdout:
                replica_sql(lab, "SET GLOBAL read_only = OFF;")
                return
            time.sleep(0.2)

    t = threading.Thread(target=unfence_during_outage, daemon=True)
    t.start()
    try:
        r, journal = run_drill(tmp_path, "vpn_outage", "outage_seconds:float=3")
    finally:
        t.join(timeout=70)
        replica_sql(lab, "SET GLOBAL read_only = ON;")
    d = journal["drpoc"]
    assert r.returncode == 1 and d["verdict"]["passed"] is False
    assert any(x.startswith("split brain: source and replica both writable") for x in d["verdict"]["reasons"]), d
    assert max(s.get("writers") or 0 for s in d["timeline"]["samples"]) == 2
    assert rep_probes.single_writer(configuration=CFG) is True


def test_drain_promote_and_errant_transactions_on_real_mariadb(ready):
    """The tunnel is cut and the source keeps writing: the promoted replica's fork is where it stopped, and the old
    primary's errant transactions are exactly the writes after it. Then everything is put back."""
    lab = ready
    inv = load_inventory(INVENTORY)
    rep_actions.write_ping(phase="before", wait_visible_seconds=10, configuration=CFG)
    gateway.take_down(inv, inv.drill.fault_site, fault=False)
    try:
        replica.wait_for_io(inv, "Connecting", timeout=30)
        before = topology.binlog_position(inv.source, inv)
        for _ in range(3):
            services_context.sql(inv.source, inv, "INSERT INTO testdb.ping (msg) VALUES ('drpoc:topology:errant')")
        drained = topology.drain(inv, timeout=10)
        assert drained["received"] and drained["applied"]
        promoted = topology.promote(inv.replica, inv)
        assert promoted["fork"] == drained["applied"]
        assert topology.writers(inv)["writers"] == 2  # both writable: exactly the split brain a drill must catch
        topology.fence(inv.source, inv)  # the old primary comes back fenced
        assert topology.writers(inv) == {"source": False, "replica": True, "writers": 1, "single": True}
        errant = topology.errant_transactions(inv.source, promoted["fork"], inv)
        assert len(errant) == 3, (before, promoted, errant)
        assert errant[-1] == topology.binlog_position(inv.source, inv)
    finally:
        # put the lab back: source writable, replica fenced and replicating again (from where it stopped: the three
        # rows follow through the tunnel), tunnel up
        topology.unfence(inv.source, inv)
        topology.fence(inv.replica, inv)
        lab.sql(DATABASES["onprem"]["host"], configs.replica_bootstrap_sql(
            DATABASES["aws"]["ip"], (Paths().secrets / "repl_password").read_text().strip(),
            _knobs(lab)))
        gateway.recover(inv, timeout=60)
        replica.catch_up(inv, timeout=30)
    assert vpn_probes.tunnel_established("fault", configuration=CFG)
    assert rep_probes.single_writer(configuration=CFG) is True
    assert rep_probes.ping_rows_match(configuration=CFG) is True


def _knobs(lab):
    from drpoc_chaos.lab.topology import ReplicaKnobs
    return ReplicaKnobs(**json.loads(lab.paths.lab_json.read_text())["knobs"])


def test_failover_to_on_prem_and_switchover_back_by_hand(ready):
    """The failover drill's steps with the primitives, by hand: the AWS source isolated with the tunnel cut, on-prem
    drained and promoted and written to; AWS back fenced with no errant transaction, re-pointed to on-prem by GTID;
    then the planned switchover back (fence on-prem, AWS catches up, promote AWS, re-point on-prem) — zero lost
    writes, one writer at every step after the fence, the original topology at the end."""
    inv = load_inventory(INVENTORY)
    src, rep = inv.source, inv.replica
    rep_actions.write_ping(phase="before", wait_visible_seconds=10, configuration=CFG)
    gateway.take_down(inv, inv.drill.fault_site, fault=False)
    faults.lose_source(mode="isolate", configuration=CFG)
    services_context.close_all()
    try:
        replica.wait_for_io(inv, "Connecting", timeout=30)
        topology.drain(inv, timeout=10)
        promoted = topology.promote(rep, inv)
        burst = writer.write_burst(inv, count=3, rate=50, phase="new:after", target="replica")
        assert burst["acknowledged"] == 3, burst
        new_rows = [r["msg"] for r in services_context.sql(
            rep, inv, "SELECT msg FROM testdb.ping WHERE id IN (%s, %s, %s)", tuple(burst["ids"]))]
        assert len(new_rows) == 3
        faults.bring_source_back(configuration=CFG)  # reachable again, fenced
        services_context.close_all()
        assert topology.writers(inv) == {"source": False, "replica": True, "writers": 1, "single": True}
        gateway.recover(inv, timeout=60)
        assert topology.errant_transactions(src, promoted["fork"], inv) == []
        topology.repoint(src, rep, inv)
        topology.wait_applied(src, topology.binlog_position(rep, inv), inv, timeout=30)
        got = {r["msg"] for r in services_context.sql(src, inv, "SELECT msg FROM testdb.ping WHERE id IN (%s, %s, %s)",
                                                      tuple(burst["ids"]))}
        assert set(new_rows) <= got  # the old primary now has what was written on the new one
        # the planned switchover back to AWS
        topology.fence(rep, inv)
        t0 = time.monotonic()
        topology.wait_applied(src, topology.binlog_position(rep, inv), inv, timeout=30)
        topology.promote(src, inv)
        window = time.monotonic() - t0
        topology.repoint(rep, src, inv)
        assert topology.writers(inv) == {"source": True, "replica": False, "writers": 1, "single": True}
        print(f"switchover write-unavailability window {window:.3f}s")
        assert window < 5
        replica.wait_for_io(inv, "Yes", timeout=30)
        replica.catch_up(inv, timeout=30)
    finally:
        faults.bring_source_back(configuration=CFG)
        services_context.close_all()
        # whatever happened above: AWS the writable source, on-prem its fenced replica, the tunnel up
        topology.unfence(src, inv)
        # the lab's own replication settings (MASTER_USE_GTID=slave_pos), not repoint's current_pos: they persist
        # in the replica's data directory and other tests read them
        topology.fence(rep, inv)
        ready.sql(DATABASES["onprem"]["host"], configs.replica_bootstrap_sql(
            DATABASES["aws"]["ip"], (Paths().secrets / "repl_password").read_text().strip(), _knobs(ready)))
        gateway.recover(inv, timeout=60)
    assert vpn_probes.tunnel_established("fault", configuration=CFG)
    assert rep_probes.single_writer(configuration=CFG) is True
    assert rep_probes.replica_threads_running(configuration=CFG) is True
    assert rep_probes.ping_rows_match(configuration=CFG) is True
