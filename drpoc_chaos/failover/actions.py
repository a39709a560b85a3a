"""Chaos Toolkit actions of the site failover drill (experiments/site_failover.yaml): lose the fault site, confirm
the loss, promote the replica, bring the old primary back fenced, reconcile it, switch back. Adapters over
services.failover; each step records its progress on the peer gateway so `drpoc recover` can finish it."""
from __future__ import annotations

from typing import Any, Mapping

from ..activity import activity, number
from ..core import recorder
from ..inventory import Inventory
from ..lab import faults as lab_faults
from ..services import failover, gateway, replica, topology
from ..services.context import fleet, inventory
from ..services.errors import StepFailed

__all__ = ["lose_site", "wait_site_lost", "promote_replica", "bring_back_site", "reconcile_old_primary",
           "switch_back"]

LOSS_MODES = ("crash", "freeze", "isolate")


def _run_id() -> str:
    d = recorder.current()
    return d.run_id if d is not None else "manual"


def _require_step(inv: Inventory, action: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    """The failover record of *this* drill at one of the `allowed` steps, or a refusal that touches nothing. Chaos
    Toolkit goes on with the method after a failed activity: without this, a refused `lose_site` or an unconfirmed
    loss would still be followed by a promotion, a fence and a re-seed of a healthy source."""
    rec = failover.read_record(inv)
    run = _run_id()
    if rec is None or rec.get("run") != run or rec.get("step") not in allowed:
        seen = "no failover recorded" if rec is None else \
            f"the record is run {str(rec.get('run'))[:8]} at step {rec.get('step')}"
        raise StepFailed(f"{action}: this drill's failover is not at {' or '.join(allowed)} ({seen} on "
                         f"{inv.gateway(inv.drill.peer_site).host}): nothing was done")
    return rec


def _shared_source(inv: Inventory, configuration: Mapping | None) -> list[str]:
    """Other pairs of the inventory whose source is this pair's source database."""
    src = inv.source
    return [o.pair for o in fleet(configuration).others(inv.pair)
            if (o.source.address, o.source.port, o.source.via) == (src.address, src.port, src.via)]


def source_return(inv: Inventory):
    """How the lost source comes back: the lab restarts or thaws it (fenced); a real site's server is there to be
    fenced (a drill isolates it, never kills it)."""
    if lab_faults.is_lab(inv):
        return lab_faults.return_lost_source
    return None


@activity
def lose_site(loss: str = "crash", reseed: str = "auto", configuration: Mapping | None = None,
              secrets: Mapping | None = None) -> dict[str, Any]:
    """The fault: the source's site is lost — its tunnel goes down and its server is gone. `loss`: `crash` (mariadbd
    SIGKILL: acknowledged writes not yet shipped are lost with it), `freeze` (SIGSTOP: it holds its connections and
    answers nothing) or `isolate` (alive but unreachable). Crash and freeze are emulated on the lab only; on a real
    estate the site is isolated as a test failover that costs no real write: the source is fenced first, the
    replica applies everything it committed, then the tunnel goes down (no application write can land on the source
    while the replica is promoted, and nothing errant is left).

    Everything the failover will need is checked first (roles, replication account and addresses, the re-seed
    tools when `reseed` is `auto`); nothing is touched when a check fails."""
    if loss not in LOSS_MODES:
        raise StepFailed(f"lose_site: loss must be one of {', '.join(LOSS_MODES)}, not {str(loss)[:40]!r}")
    inv = inventory(configuration)
    lab = lab_faults.is_lab(inv)
    if not lab and loss != "isolate":
        raise StepFailed(f"lose_site: loss {loss!r} kills or stops the source's mysqld, which only the lab emulates; "
                         f"on {inv.path} use loss: isolate (the tunnel goes down and the source is fenced)")
    shared = _shared_source(inv, configuration)
    if shared:
        raise StepFailed(f"lose_site: the source {inv.source.host} of pair {inv.pair} is also the source of pair"
                         f"{'s' if len(shared) > 1 else ''} {', '.join(shared)}: losing its site would take their "
                         f"source too. Drill the failover on a pair whose source is its own; nothing was touched")
    failover.check_ready(inv, reseed)
    if failover.in_progress(inv):
        raise StepFailed(f"a failover is already recorded on {inv.gateway(inv.drill.peer_site).host} (an earlier "
                         f"drill did not finish): run `drpoc recover` first")
    d = recorder.current()
    if d is not None:
        d.undo_loss = source_return(inv)
    failover.record(inv, _run_id(), "lost")
    if not lab:
        # a real estate's test failover must not cost a real write: fence the source first, let the replica apply
        # everything it committed, and only then cut the site off — nothing errant is left to throw away
        topology.fence(inv.source, inv, secrets)
        try:
            replica.catch_up(inv, timeout=30, secrets=secrets)
        except Exception:
            topology.unfence(inv.source, inv, secrets)
            failover.forget_record(inv)
            raise
    try:
        down = gateway.take_down(inv, inv.drill.fault_site, fault=True)
    except Exception:
        if d is None or not d.fault_injected:  # refused before the tunnel was touched: no failover to finish
            failover.forget_record(inv)
        raise
    if lab:
        lost = lab_faults.lose_source(mode=loss, configuration={"inventory": str(inv.path), "pair": inv.pair})
    else:
        lost = {"mode": "isolate", "fenced": inv.source.host}
    recorder.event("site_lost", loss=loss, site=inv.drill.fault_site)
    return {"loss": loss, "tunnel": down, "source": lost}


@activity
def wait_site_lost(timeout: float = 30, configuration: Mapping | None = None,
                   secrets: Mapping | None = None) -> dict[str, Any]:
    """Detection: the source counts as lost only when the replica agrees (its IO thread lost it) and the source does
    not take writes either (orchestrator's holistic dead-master detection). Raises after `timeout` s — then nothing
    is promoted."""
    inv = inventory(configuration)
    _require_step(inv, "wait_site_lost", ("lost",))
    return failover.wait_site_lost(inv, number("wait_site_lost", "timeout", timeout, minimum=0), secrets)


@activity
def promote_replica(drain_timeout: float = 30, configuration: Mapping | None = None,
                    secrets: Mapping | None = None) -> dict[str, Any]:
    """Drain (the SQL thread applies everything the IO thread received), record the fork on the peer gateway, then
    promote the replica (stop and forget replication, writable); a writer following the primary moves to it."""
    inv = inventory(configuration)
    _require_step(inv, "promote_replica", ("lost",))
    d = recorder.current()
    if d is not None and not d.has_event("site_lost_detected"):
        raise StepFailed("promote_replica: the loss of the source's site was not confirmed (wait_site_lost did not "
                         "detect it): promoting now would make two primaries; nothing was promoted")
    return failover.promote(inv, _run_id(), number("promote_replica", "drain_timeout", drain_timeout, minimum=0),
                            secrets)


@activity
def bring_back_site(timeout: float = 90, configuration: Mapping | None = None,
                    secrets: Mapping | None = None) -> dict[str, Any]:
    """The lost site returns: its server fenced first (lab: restarted read-only, or thawed while still cut off), then
    the tunnel in the seed's order."""
    inv = inventory(configuration)
    _require_step(inv, "bring_back_site", ("promoted", "fenced"))
    return failover.bring_back_fenced(inv, _run_id(), source_return(inv),
                                      number("bring_back_site", "timeout", timeout, minimum=0), secrets)


@activity
def reconcile_old_primary(reseed: str = "auto", timeout: float = 120, configuration: Mapping | None = None,
                          secrets: Mapping | None = None) -> dict[str, Any]:
    """List the old primary's errant transactions; none — re-point it under the new primary by GTID; some — re-seed
    it from the new primary (`reseed: auto`) or stop with it fenced (`reseed: refuse`). Then wait for it to catch
    up (bounded by `timeout`)."""
    if reseed not in failover.RESEED_MODES:
        raise StepFailed(f"reconcile_old_primary: reseed must be one of {', '.join(failover.RESEED_MODES)}")
    inv = inventory(configuration)
    _require_step(inv, "reconcile_old_primary", ("fenced", "reconciled"))
    return failover.reconcile(inv, _run_id(), reseed, number("reconcile_old_primary", "timeout", timeout, minimum=0),
                              secrets)


@activity
def switch_back(timeout: float = 60, configuration: Mapping | None = None,
                secrets: Mapping | None = None) -> dict[str, Any]:
    """The planned switchover back to the original primary with zero lost writes: fence the promoted replica, wait
    for the old primary to apply everything, promote it (the writer follows), re-point the replica under it."""
    inv = inventory(configuration)
    _require_step(inv, "switch_back", ("reconciled", "switching"))
    return failover.switch_back(inv, _run_id(), number("switch_back", "timeout", timeout, minimum=0), secrets)
