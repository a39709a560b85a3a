"""The site failover drill's steps, and the one way back from any of them.

The fault site (the source's site: AWS in the seed) is lost; the replica is drained and promoted; the writer moves to
it; the old primary comes back fenced, its errant transactions are listed, it is re-pointed (none) or re-seeded
(some) under the new primary; then a planned switchover returns the writes to it and the replica goes back under it.

Every step records its progress on the peer gateway (the surviving site) through the gateway helper
(`failover-record`), with the fork — the position the promoted replica had applied from the old primary — so an
interrupted drill can be finished by `finish()` (the drill control's restore and `drpoc recover`). `finish()` reads
the servers' real state at every step (core.failover.next_step); the record only supplies the fork and whether the
switchover back had begun. It never unfences a server before the other is fenced.
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any, Callable, Mapping

from .. import db
from ..core import recorder
from ..core.failover import CANONICAL, PairState, next_step
from ..db import DbError
from ..inventory import Inventory, MysqlEndpoint
from ..remote import RemoteError
from . import gateway, replica, reseed, topology
from .context import sql
from .errors import StepFailed

logger = logging.getLogger("chaostoolkit")

STEPS = ("lost", "promoting", "promoted", "fenced", "reconciled", "switching", "switched")
RESEED_MODES = ("auto", "refuse")


# --- the record on the surviving gateway ----------------------------------------------------------------------

def _record_gateway(inv: Inventory):
    return gateway.helper(inv, inv.drill.peer_site)


def record(inv: Inventory, run_id: str, step: str, fork: str | None = None,
           settings: Mapping[str, float | None] | None = None) -> None:
    """Write the drill's progress on the peer gateway (raises when it cannot: a failover step never runs
    unrecorded — `drpoc recover` would not know the fork). `settings`: the replica's own connect retry and heartbeat,
    put back when it is re-pointed at the end."""
    if step not in STEPS:
        raise ValueError(f"unknown failover step {step!r}")
    pairs = ",".join(f"{k}={float(v):g}" for k, v in sorted((settings or {}).items()) if v is not None)
    fork = "".join((fork or "").split())  # MySQL prints long GTID sets over several lines
    _record_gateway(inv).run("failover-record", run_id, step, fork or "-", pairs or "-", check=True)


def read_record(inv: Inventory) -> dict[str, Any] | None:
    """{"run", "step", "fork", "settings": {name: number}, "at"} from the peer gateway, or None when no failover is
    in progress."""
    text = _record_gateway(inv).run("failover-show", check=True).stdout.strip()
    if not text:
        return None
    out: dict[str, Any] = dict(part.split("=", 1) for part in text.split() if "=" in part)
    if out.get("fork") == "-":
        out["fork"] = ""
    settings: dict[str, float] = {}
    for pair in ("" if out.get("settings") in (None, "-") else out["settings"]).split(","):
        name, _, value = pair.partition("=")
        try:
            settings[name] = float(value)
        except ValueError:
            continue
    out["settings"] = settings
    return out


def _keep(rec: Mapping[str, Any] | None) -> dict[str, Any]:
    """fork and settings of a record, to write the next step with."""
    return {"fork": (rec or {}).get("fork") or None, "settings": (rec or {}).get("settings") or None}


def forget_record(inv: Inventory, run_id: str | None = None) -> None:
    _record_gateway(inv).run("failover-forget", *([run_id] if run_id else []), check=True)


# --- before anything is touched ------------------------------------------------------------------------------

def check_ready(inv: Inventory, reseed_mode: str = "auto") -> None:
    """Refuse a failover drill the estate cannot finish, before the fault: the source must be on the fault site, both
    servers need a replication address and the inventory a replication account (to re-point them), and the
    re-seed tool must be there when re-seeding is allowed."""
    if reseed_mode not in RESEED_MODES:
        raise StepFailed(f"reseed must be one of {', '.join(RESEED_MODES)}, not {str(reseed_mode)[:40]!r}")
    if inv.source.site != inv.drill.fault_site:
        raise StepFailed(f"a site failover loses the source's site: the source is on {inv.source.site}, the fault "
                         f"site is {inv.drill.fault_site} — set drill.fault_site: {inv.source.site} in "
                         f"{inv.path}")
    if inv.replication is None:
        raise StepFailed(f"{inv.path}: a failover drill re-points the servers and needs the replication account: "
                         f"add `replication: {{user: …, password: {{file|env|secret: …}}}}` (docs/FAILOVER.md)")
    for ep in (inv.source, inv.replica):
        if not ep.replication_address:
            raise StepFailed(f"{inv.path}: sites.{ep.site}.database.mysql.replication_address is not set: give the "
                             f"address the other site's server reaches {ep.host} at for replication")
    if reseed_mode == "auto":
        reseed.check_tools(inv)


# --- what the servers say ------------------------------------------------------------------------------------

PROBE_SECONDS = 2.0  # a live server answers a connect and one SELECT within this; a frozen one never does


def _answers(ep: MysqlEndpoint, inv: Inventory, secrets: Mapping | None) -> dict[str, Any] | None:
    """The server's read_only flags on a fresh connection with short timeouts, or None when it does not answer
    (down, frozen — it accepts TCP and says nothing —, or cut off). Never the pooled connection: a frozen server
    would hold it for the full read timeout."""
    quick = replace(ep, connect_timeout=min(ep.connect_timeout, PROBE_SECONDS),
                    read_timeout=min(ep.read_timeout, PROBE_SECONDS),
                    write_timeout=min(ep.write_timeout, PROBE_SECONDS))
    try:
        conn = db.connect(quick, inv, secrets)
    except (DbError, OSError):
        return None
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@GLOBAL.read_only AS ro")
            return cur.fetchone()
    except Exception:  # noqa: BLE001 — any failure to answer is "does not answer"
        return None
    finally:
        try:
            conn.close()
        except Exception:  # noqa: BLE001
            pass


def _reachable(ep: MysqlEndpoint, inv: Inventory, secrets: Mapping | None) -> bool:
    return _answers(ep, inv, secrets) is not None


def pair_state(inv: Inventory, fork: str | None, switching: bool = False,
               secrets: Mapping | None = None) -> PairState:
    src, rep = inv.source, inv.replica
    src_up = _reachable(src, inv, secrets)
    rep_writable = topology.writable(rep, inv, secrets)
    rep_replicates = replica.status_of(rep, inv, secrets) is not None
    if fork:
        own = bool(topology.errant_transactions(rep, fork, inv, secrets))
    else:
        own = rep_writable  # no record of the fork: a writable promoted server is taken to have written
    src_status = replica.status_of(src, inv, secrets) if src_up else None
    return PairState(source_reachable=src_up,
                     source_writable=topology.writable(src, inv, secrets) if src_up else None,
                     source_replicates=(src_status is not None) if src_up else None,
                     source_replication_broken=bool(src_status and (src_status.last_sql_errno or
                                                                    src_status.sql_running == "No")),
                     replica_writable=rep_writable, replica_replicates=rep_replicates, replica_own_writes=own,
                     switching=switching)


# --- the drill's steps ---------------------------------------------------------------------------------------

def wait_site_lost(inv: Inventory, timeout: float, secrets: Mapping | None = None,
                   poll: float = 0.1) -> dict[str, Any]:
    """Dead-primary detection as orchestrator does it, holistically: the source is dead only when the replica agrees
    — its IO thread lost the source — and the source does not answer either. Records `site_lost_detected`."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    io = answers = None
    while True:
        st = replica.read_status(inv, secrets)
        io = st.io_running if st else None
        recorder.replica_io_seen(io)
        if io != "Yes":
            said = _answers(inv.source, inv, secrets)
            answers = said is not None and int(said.get("ro") or 0) == 0
            if not answers:
                recorder.event("site_lost_detected", io=io)
                return {"detected": True, "seconds": round(time.monotonic() - t0, 3), "replica_io": io}
        if time.monotonic() >= deadline:
            why = ("the replica still replicates from the source" if io == "Yes" else
                   f"the replica lost it (IO {io!r}) but the source still takes writes")
            raise StepFailed(f"the loss of site {inv.drill.fault_site} was not confirmed within {timeout:g}s: {why} "
                             f"— a failover now would make two primaries; nothing was promoted")
        time.sleep(poll)


def promote(inv: Inventory, run_id: str, drain_timeout: float, secrets: Mapping | None = None) -> dict[str, Any]:
    """Drain the replica's relay log, record the fork on the peer gateway, then promote (stop and forget
    replication, take writes) and send the drill's writer there. Records `drained`, `promoted`."""
    rep = inv.replica
    settings = {k: v for k, v in replica.read_settings(inv, secrets).items()
                if k in ("connect_retry", "heartbeat_period")}
    drained = topology.drain(inv, drain_timeout, secrets)
    recorder.event("drained", applied=drained["applied"])
    dialect = replica.dialect_of(rep, inv, secrets)
    sql(rep, inv, dialect.stop, secrets=secrets)
    fork = topology.applied_position(rep, inv, secrets)
    # before the promotion: without the fork, nobody could count the old primary's errant transactions
    record(inv, run_id, "promoting", fork, settings)
    out = topology.promote(rep, inv, secrets)
    record(inv, run_id, "promoted", fork, settings)
    recorder.event("promoted", host=rep.host, fork=fork)
    recorder.move_writer("replica", "new")
    return {"drained": drained, "fork": fork, "promoted": rep.host, **{k: v for k, v in out.items() if k != "fork"}}


def bring_back_fenced(inv: Inventory, run_id: str, bring_back: Callable[[Inventory], Any] | None,
                      tunnel_timeout: float, secrets: Mapping | None = None) -> dict[str, Any]:
    """The lost site returns: its server fenced first (it must never take a write behind the drill's back), then the
    tunnel in the seed's order. Records `fenced` and `tunnel_up`."""
    rec = read_record(inv) or {}
    came_back = bring_back(inv) if bring_back is not None else None
    if not _reachable(inv.source, inv, secrets):
        raise StepFailed(f"the source {inv.source} does not answer: bring it back (start it with read_only=ON), "
                         f"then run `drpoc recover`")
    topology.fence(inv.source, inv, secrets)
    recorder.recovery_started()
    t = gateway.recover(inv, timeout=tunnel_timeout)
    record(inv, run_id, "fenced", **_keep(rec))
    recorder.event("fenced", host=inv.source.host)
    return {"source": came_back, "fenced": inv.source.host, "tunnel": "already up" if t["already_up"] else
            f"recovered ({len(t['attempts'])} attempt(s))"}


def reconcile(inv: Inventory, run_id: str, reseed_mode: str, catch_up_timeout: float,
              secrets: Mapping | None = None) -> dict[str, Any]:
    """List the old primary's errant transactions (GTIDs it has that the new primary lacks — they must equal the lost
    acknowledged writes). None: re-point it under the new primary by GTID. Some: re-seed it from the new primary
    (services/reseed.py), unless `reseed_mode` is `refuse` (then stop, fenced, and say so). Then wait until it has
    caught up. Records `errant_found` and `repointed` or `reseeded`."""
    rec = read_record(inv) or {}
    fork = rec.get("fork") or ""
    src, rep = inv.source, inv.replica
    if rec.get("step") not in ("fenced", "reconciled"):
        raise StepFailed(f"the old primary {src.host} is not back and fenced (recorded step: {rec.get('step')}): "
                         f"nothing was reconciled; run `drpoc recover`")
    errant = topology.errant_transactions(src, fork, inv, secrets) if fork else None
    if errant is None:
        raise StepFailed(f"no recorded fork on {inv.gateway(inv.drill.peer_site).host}: the old primary's errant "
                         f"transactions cannot be counted — compare {src.host} with {rep.host} by hand (GTID sets)")
    recorder.event("errant_found", count=len(errant), gtids=errant[:50])
    recorder.metric("errant_transactions", len(errant))
    if errant:
        if reseed_mode != "auto":
            raise StepFailed(f"{src.host} holds {len(errant)} errant transaction(s) ({', '.join(errant[:5])}…): it "
                             f"stays fenced; re-seed it from {rep.host} (reseed: auto) or by hand, then run "
                             f"`drpoc recover`")
        how = reseed.reseed(src, rep, inv, secrets)
    else:
        how = None
    repointed = topology.repoint(src, rep, inv, secrets, settings=rec.get("settings"))
    recorder.event("reseeded" if errant else "repointed", host=src.host, source=rep.host,
                   **({k: how[k] for k in ("seconds", "position", "schemas")} if how else {}))
    waited = topology.wait_applied(src, topology.binlog_position(rep, inv, secrets), inv, catch_up_timeout, secrets)
    record(inv, run_id, "reconciled", **_keep(rec))
    return {"errant": errant, "action": "reseeded" if errant else "repointed", "reseed": how,
            "repointed": repointed, "caught_up_seconds": waited}


def switch_back(inv: Inventory, run_id: str, timeout: float, secrets: Mapping | None = None) -> dict[str, Any]:
    """The planned switchover back, with zero lost writes: fence the promoted replica, wait until the old primary has
    applied everything it wrote, promote the old primary (the writer follows), re-point the replica under it.
    Records `switched_back`."""
    rec = read_record(inv) or {}
    src, rep = inv.source, inv.replica
    st = replica.status_of(src, inv, secrets)
    if not replica.threads_running(st):
        # only a server that replicates from the promoted one can be handed the writes back without losing any
        raise StepFailed(f"{src.host} does not replicate from {rep.host} (IO {st.io_running if st else None}, SQL "
                         f"{st.sql_running if st else None}): the old primary was not reconciled — nothing was "
                         f"switched; run `drpoc recover`")
    record(inv, run_id, "switching", **_keep(rec))
    topology.fence(rep, inv, secrets)
    recorder.event("switchover_started", fenced=rep.host)
    topology.wait_applied(src, topology.binlog_position(rep, inv, secrets), inv, timeout, secrets)
    topology.promote(src, inv, secrets)
    recorder.move_writer("source", "back")
    topology.repoint(rep, src, inv, secrets, settings=rec.get("settings"))
    record(inv, run_id, "switched", **_keep(rec))
    recorder.event("switched_back", primary=src.host, replica=rep.host)
    forget_record(inv, run_id)  # back where it started: nothing left for `drpoc recover`
    return {"primary": src.host, "replica": rep.host}


# --- finishing an interrupted failover (the drill control's restore, `drpoc recover`) ------------------------

def finish(inv: Inventory, *, bring_back: Callable[[Inventory], Any] | None = None, reseed_mode: str = "auto",
           timeout: float = 120, tunnel_timeout: float = 90, secrets: Mapping | None = None,
           say: Callable[[str], None] = lambda _: None, max_steps: int = 12) -> dict[str, Any]:
    """Drive the pair back to the original topology (source primary, replica under it, tunnel up) from wherever it
    stands; safe to re-run. Returns {"ok", "steps", "record"} (the steps taken, the record it started from); raises
    StepFailed when a step needs a human (it says which and what the servers are left as)."""
    rec = read_record(inv)
    run_id = rec["run"] if rec else "recover"
    fork = rec.get("fork") if rec else None
    steps: list[str] = []
    switched = False
    for _ in range(max_steps):
        # once the switchover began, own writes counted from the fork mean nothing (they were handed back)
        switching = switched or bool(rec and rec.get("step") in ("switching", "switched"))
        if switching:
            fork = None
        state = pair_state(inv, fork, switching, secrets)
        step = next_step(state)
        if step == CANONICAL:
            break
        say(f"failover: {step}")
        steps.append(step)
        if step == "bring-source-back":
            if bring_back is None:
                raise StepFailed(f"the source {inv.source} does not answer: start it with read_only=ON, then run "
                                 f"`drpoc recover` again")
            bring_back(inv)
            if not _reachable(inv.source, inv, secrets):
                raise StepFailed(f"the source {inv.source} still does not answer: start it with read_only=ON, "
                                 f"then run `drpoc recover` again")
            topology.fence(inv.source, inv, secrets)
        elif step == "fence-replica":
            topology.fence(inv.replica, inv, secrets)
        elif step == "unfence-source":
            gateway.recover(inv, timeout=tunnel_timeout)
            topology.unfence(inv.source, inv, secrets)
        elif step == "undo-promotion":
            gateway.recover(inv, timeout=tunnel_timeout)
            topology.repoint(inv.replica, inv.source, inv, secrets, settings=(rec or {}).get("settings"))
        elif step == "fence-source":
            topology.fence(inv.source, inv, secrets)
        elif step == "reconcile-source":
            topology.fence(inv.source, inv, secrets)
            if rec is None:
                raise StepFailed(f"no failover record on {inv.gateway(inv.drill.peer_site).host} (was it rebooted?): "
                                 f"without the fork the old primary's errant transactions cannot be counted. "
                                 f"{inv.source.host} stays fenced; compare its GTIDs with {inv.replica.host}'s, "
                                 f"re-seed or re-point it by hand, then run `drpoc recover` again")
            gateway.recover(inv, timeout=tunnel_timeout)
            if rec.get("step") not in ("fenced", "reconciled"):
                record(inv, run_id, "fenced", **_keep(rec))  # what this step just made true
            reconcile(inv, run_id, reseed_mode, timeout, secrets)
            rec = read_record(inv)
        elif step == "switch-back":
            gateway.recover(inv, timeout=tunnel_timeout)
            switch_back(inv, run_id, timeout, secrets)
            switched = True
        elif step == "repoint-replica":
            gateway.recover(inv, timeout=tunnel_timeout)
            topology.repoint(inv.replica, inv.source, inv, secrets, settings=(rec or {}).get("settings"))
        else:  # pragma: no cover — next_step names only the steps above
            raise StepFailed(f"unknown failover step {step}")
    else:
        raise StepFailed(f"the pair did not reach the original topology in {max_steps} steps ({', '.join(steps)}): "
                         f"check both servers (SHOW REPLICA STATUS, @@read_only)")
    gateway.recover(inv, timeout=tunnel_timeout)
    if not replica.threads_running(replica.read_status(inv, secrets)):
        replica.restart(inv, secrets)  # a promotion interrupted after STOP: replication resumes where it stopped
        steps.append("restart-replica")
    replica.catch_up(inv, timeout=timeout, secrets=secrets)
    if rec is not None:
        forget_record(inv)
    return {"ok": True, "steps": steps, "record": rec}


def in_progress(inv: Inventory) -> bool:
    """A failover record on the peer gateway (a failover drill started and has not finished)."""
    try:
        return read_record(inv) is not None
    except (RemoteError, StepFailed):
        return False


def needs_finishing(inv: Inventory, secrets: Mapping | None = None) -> bool:
    """For `drpoc recover`: a failover is recorded, or the servers are not as the inventory says — the replica
    writable or no longer replicating, or the source fenced — what an interrupted failover leaves when its record is
    gone (a gateway reboot empties /run)."""
    if in_progress(inv):
        return True
    try:
        if topology.writable(inv.replica, inv, secrets) or replica.read_status(inv, secrets) is None:
            return True
        said = _answers(inv.source, inv, secrets)
        return said is not None and int(said.get("ro") or 0) != 0
    except (DbError, RemoteError, StepFailed):
        return False
