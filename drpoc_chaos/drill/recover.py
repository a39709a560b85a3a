"""`drpoc recover`: put the tunnel and the replica back by hand after a drill went wrong. Safe to run again and again:
every step first checks whether there is anything to do."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from chaoslib.exceptions import ActivityFailed

from ..activity import close_all, gateway_host, inventory
from ..remote import RemoteError
from . import safety


def recover(inventory_path: str | None = None, timeout: float = 90, release_lock: bool = True,
            say: Callable[[str], None] = print) -> dict[str, Any]:
    from ..replication.actions import restart_replica, wait_for_replica
    from ..vpn.actions import recover_tunnel

    configuration = {"inventory": inventory_path} if inventory_path else {}
    inv = inventory(configuration)
    configuration = {"inventory": str(inv.path)}
    out: dict[str, Any] = {"inventory": str(inv.path), "ok": True}
    gw = gateway_host(inv, inv.drill.fault_site)
    try:
        dm = safety.disarm_deadman(gw)
        out["deadman"] = dm
        say(f"dead-man's switch on {gw.name}: " + ("disarmed" if dm["disarmed"] else "none armed")
            + (f" (it had fired at {dm['fired_at']})" if dm["fired"] else ""))
        if dm["fired"]:
            safety.clear_fired_marker(gw)
    except RemoteError as exc:
        say(f"dead-man's switch: could not check ({exc})")
    if inv.name == "lab" and Path("/run/netns/wan").exists():
        from ..lab.faults import unblock_inbound_ike
        unblock_inbound_ike(configuration=configuration)
    try:
        r = recover_tunnel(timeout=timeout, configuration=configuration)
        out["tunnel"] = "already up" if r["already_up"] else f"recovered in {len(r['attempts'])} attempt(s)"
        say(f"tunnel {inv.drill.connection}: {out['tunnel']}")
    except ActivityFailed as exc:
        out.update(ok=False, tunnel=f"FAILED: {exc}")
        say(f"tunnel {inv.drill.connection}: NOT recovered: {exc}")
    if out["ok"]:
        try:
            wait_for_replica("Yes", timeout=min(timeout, 30), configuration=configuration)
            out["replica"] = "running"
        except ActivityFailed:
            say("replica still not connected: STOP REPLICA; START REPLICA")
            restart_replica(configuration=configuration)
            try:
                wait_for_replica("Yes", timeout=min(timeout, 30), configuration=configuration)
                out["replica"] = "restarted"
            except ActivityFailed as exc:
                out.update(ok=False, replica=f"FAILED: {exc}")
        say(f"replica on {inv.replica.host}: {out['replica']}")
    if release_lock:
        try:
            holder = safety.lock_holder(gw)
            if holder and safety.release_lock(gw):
                say(f"drill lock on {gw.name} released (held by run {str(holder.get('run_id', '?'))[:8]})")
            out["lock_released"] = bool(holder)
        except RemoteError as exc:
            say(f"drill lock: could not check ({exc})")
    close_all()
    return out
