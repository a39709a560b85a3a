"""`drpoc recover`: put the tunnel and the replica back by hand after a drill went wrong, and account for it. Safe to
run again and again: every step first checks whether there is anything to do.

Order: disarm the dead-man's switch (recover takes over), finish an interrupted failover drill (back to the original
topology: services/failover.py), restore the tunnel in the seed's order, get the replica running, archive every
drill of this gateway that died without an outcome (docs/EVIDENCE.md), release the lock."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from ..inventory import Inventory
from ..remote import RemoteError
from ..services import failover, gateway
from ..services.context import close_all, inventory
from ..services.errors import StepFailed
from ..services.restore import restore
from . import died, safety


def default_archive_dir() -> Path:
    return Path(os.environ.get("DRPOC_ARCHIVE_DIR") or "journal")


def recover(inventory_path: str | None = None, timeout: float = 90, release_lock: bool = True,
            archive_dir: str | os.PathLike | None = None, say: Callable[[str], None] = print,
            undo_emulated_faults: Callable[[Inventory], None] | None = None,
            bring_back_source: Callable[[Inventory], Any] | None = None, pair: str | None = None) -> dict[str, Any]:
    """`undo_emulated_faults(inv)` runs before the tunnel is restored: the command line passes the lab's (its WAN
    filters, a frozen or isolated source), which this layer does not know about; `bring_back_source(inv)` restarts
    a lost source (the lab's crashed mariadbd) when a failover is to be finished."""
    inv = inventory({**({"inventory": inventory_path} if inventory_path else {}), **({"pair": pair} if pair else {})})
    out: dict[str, Any] = {"inventory": str(inv.path), "ok": True, **({"pair": inv.pair} if pair else {})}
    gw = gateway.helper(inv, inv.drill.fault_site)
    holder = None
    try:
        holder = safety.lock_holder(gw)
        if holder:
            say(f"drill lock on {gw.host.name} held by run {str(holder.get('run_id', '?'))[:8]} "
                f"({holder.get('scenario', '?')}) from {holder.get('controller', '?')}")
        dm = safety.disarm_deadman(gw)
        out["deadman"] = dm
        say(f"dead-man's switch on {gw.host.name}: " + ("disarmed" if dm["disarmed"] else "none armed"))
    except (RemoteError, StepFailed) as exc:
        out.update(ok=False, deadman=f"could not check: {exc}")
        say(f"dead-man's switch: could not check ({exc})")
    if undo_emulated_faults is not None:
        undo_emulated_faults(inv)
    if failover.needs_finishing(inv):
        try:
            fo = failover.finish(inv, bring_back=bring_back_source, timeout=timeout, tunnel_timeout=timeout, say=say)
            out["failover"] = fo
            say("failover: back to the original topology" + (f" ({', '.join(fo['steps'])})" if fo["steps"] else ""))
        except Exception as exc:  # noqa: BLE001 — say what is left, then do what else can be done
            out.update(ok=False, failover=f"FAILED: {exc}")
            say(f"failover: NOT finished: {exc}")
    # an unfinished failover leaves the replica promoted or unconfigured: no point waiting long for its IO thread
    unfinished = str(out.get("failover", "")).startswith("FAILED")
    restored = restore(inv, tunnel_timeout=timeout, replica_timeout=3 if unfinished else min(timeout, 30), say=say)
    out.update({k: restored[k] for k in ("tunnel", "replica") if k in restored})
    out["ok"] = out["ok"] and restored["ok"]
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
                say(f"drill lock on {gw.host.name} released (held by run {str(holder.get('run_id', '?'))[:8]})")
            out["lock_released"] = bool(holder)
        except (RemoteError, StepFailed) as exc:
            say(f"drill lock: could not check ({exc})")
    close_all()
    return out
