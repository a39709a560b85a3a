"""`drpoc recover`: put the tunnel and the replica back by hand after a drill went wrong, and account for it. Safe to
run again and again: every step first checks whether there is anything to do.

Order: disarm the dead-man's switch (recover takes over), restore the tunnel in the seed's order, get the replica
running, archive every drill of this gateway that died without an outcome (docs/EVIDENCE.md), release the lock."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from chaoslib.exceptions import ActivityFailed

from ..activity import close_all, gateway_host, inventory
from ..remote import RemoteError
from ..replication.actions import restart_replica, wait_for_replica
from ..vpn.actions import recover_tunnel
from . import died, safety


def default_archive_dir() -> Path:
    return Path(os.environ.get("DRPOC_ARCHIVE_DIR") or "journal")


def recover(inventory_path: str | None = None, timeout: float = 90, release_lock: bool = True,
            archive_dir: str | os.PathLike | None = None, say: Callable[[str], None] = print) -> dict[str, Any]:
    configuration = {"inventory": inventory_path} if inventory_path else {}
    inv = inventory(configuration)
    configuration = {"inventory": str(inv.path)}
    out: dict[str, Any] = {"inventory": str(inv.path), "ok": True}
    gw = gateway_host(inv, inv.drill.fault_site)
    holder = None
    try:
        holder = safety.lock_holder(gw)
        if holder:
            say(f"drill lock on {gw.name} held by run {str(holder.get('run_id', '?'))[:8]} "
                f"({holder.get('scenario', '?')}) from {holder.get('controller', '?')}")
        dm = safety.disarm_deadman(gw)
        out["deadman"] = dm
        say(f"dead-man's switch on {gw.name}: " + ("disarmed" if dm["disarmed"] else "none armed"))
    except RemoteError as exc:
        out.update(ok=False, deadman=f"could not check: {exc}")
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
            try:
                restart_replica(configuration=configuration)
                wait_for_replica("Yes", timeout=min(timeout, 30), configuration=configuration)
                out["replica"] = "restarted"
            except ActivityFailed as exc:
                out.update(ok=False, replica=f"FAILED: {exc}")
        say(f"replica on {inv.replica.host}: {out['replica']}")
    archive = Path(archive_dir) if archive_dir else default_archive_dir()
    try:
        out["died"] = died.close_unfinished(archive, detected_by="drpoc recover", gateway=gw,
                                            recover={k: out.get(k) for k in ("ok", "tunnel", "replica")},
                                            say=say)
        if not out["died"]:
            say(f"archive {archive}: no drill left without an outcome")
    except Exception as exc:  # noqa: BLE001 — the estate comes first; the evidence problem is reported
        out["died"] = f"could not archive drills that died: {exc}"
        say(f"archive {archive}: could not archive drills that died: {exc}")
    if release_lock:
        try:
            if holder and safety.release_lock(gw):
                say(f"drill lock on {gw.name} released (held by run {str(holder.get('run_id', '?'))[:8]})")
            out["lock_released"] = bool(holder)
        except RemoteError as exc:
            say(f"drill lock: could not check ({exc})")
    close_all()
    return out
