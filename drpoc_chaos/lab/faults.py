"""Lab-only network conditions that real sites have by nature, switched on by the scenarios that need them.

`block_inbound_ike` makes the lab's WAN router drop new IKE_SA_INIT requests initiated from one gateway towards the
other — what an on-prem gateway behind NAT (no inbound port forwarding) or a one-way firewall does, and the cause of
the seed's "peer not responding" when only the AWS side is brought back. The block carries a timeout so it lapses by
itself (the dead-man's switch must still be able to restore the tunnel if the orchestrator dies).

These actions act on the local lab as root and refuse anything else: on real sites, your NAT/firewall is the fault.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from chaoslib.exceptions import ActivityFailed

from ..activity import activity
from ..inventory import Inventory
from ..services.context import inventory
from .system import LabError, run
from .topology import GATEWAYS

__all__ = ["block_inbound_ike", "unblock_inbound_ike"]  # the activities (undo_lab_faults is for `drpoc recover`)


def _require_lab(configuration: Mapping | None, enabled: bool) -> bool:
    if not enabled:
        return False
    inv = inventory(configuration)
    if inv.name != "lab" or not Path("/run/netns/wan").exists():
        raise ActivityFailed(f"this action shapes the local lab's WAN and the inventory {inv.path} is not the lab "
                             f"(or the lab is down): on real sites set `emulate_onprem_nat: false` and let your "
                             f"NAT/firewall provide the condition")
    return True


def _nft(*args: str) -> None:
    try:
        run(["ip", "netns", "exec", "wan", "nft", *args], what="lab WAN router")
    except LabError as exc:
        raise ActivityFailed(str(exc)) from None


@activity
def block_inbound_ike(from_site: str = "aws", to_site: str = "onprem", seconds: float = 120,
                      enabled: bool = True, configuration: Mapping | None = None,
                      secrets: Mapping | None = None) -> dict[str, Any]:
    """Drop new IKE_SA_INIT requests from the `from_site` gateway to the `to_site` gateway on the lab's WAN for
    `seconds` (then the block lapses by itself). Existing SAs, responses and traffic the other way pass. With
    `enabled=False` does nothing (for real sites)."""
    if not _require_lab(configuration, enabled):
        return {"enabled": False}
    for site in (from_site, to_site):
        if site not in GATEWAYS:
            raise ActivityFailed(f"block_inbound_ike: the lab has no site {site!r} (sites: {', '.join(GATEWAYS)})")
    src, dst = GATEWAYS[from_site]["wan_ip"], GATEWAYS[to_site]["wan_ip"]
    _nft("add", "element", "inet", "drpoc_wan", "ike_init_blocked", f"{{ {src} . {dst} timeout {int(seconds)}s }}")
    return {"enabled": True, "blocked": f"IKE_SA_INIT {src} -> {dst}", "lapses_after_seconds": int(seconds)}


@activity
def unblock_inbound_ike(enabled: bool = True, configuration: Mapping | None = None,
                        secrets: Mapping | None = None) -> dict[str, Any]:
    """Lift every IKE block on the lab's WAN (idempotent). Returns how many IKE_SA_INIT requests were dropped."""
    if not _require_lab(configuration, enabled):
        return {"enabled": False}
    _nft("flush", "set", "inet", "drpoc_wan", "ike_init_blocked")
    out = run(["ip", "netns", "exec", "wan", "nft", "list", "counter", "inet", "drpoc_wan", "ike_init_dropped"],
              check=False).stdout
    dropped = next((int(line.split()[1]) for line in out.splitlines() if line.strip().startswith("packets")), None)
    return {"enabled": True, "ike_init_dropped_total": dropped}


def undo_lab_faults(inv: Inventory) -> None:
    """For `drpoc recover`: lift the lab's emulated network conditions when the inventory is the lab and it is up
    (nothing to do anywhere else)."""
    if inv.name == "lab" and Path("/run/netns/wan").exists():
        unblock_inbound_ike(configuration={"inventory": str(inv.path)})
