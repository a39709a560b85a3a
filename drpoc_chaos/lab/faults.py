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
from ..inventory import Inventory, InventoryError
from ..services.context import inventory
from .system import LabError, run
from .topology import GATEWAYS, HOSTS

__all__ = ["block_inbound_ike", "unblock_inbound_ike"]  # the activities (undo_lab_faults is for `drpoc recover`)


def _lab_site(inv: Inventory, site: str) -> str | None:
    """The lab's own site behind an inventory site, recognised by its gateway's published SSH endpoint (so an
    inventory that names the lab's sites differently still maps onto them); None when it is not a lab gateway."""
    host = inv.host(inv.gateway(site).host)
    if host.address not in ("127.0.0.1", "localhost"):
        return None
    return next((h.site for h in HOSTS if h.role == "gateway" and h.ssh_port == host.port), None)


def is_lab(inv: Inventory) -> bool:
    """Does the inventory drive the local lab (every gateway a lab gateway), and is the lab up?"""
    return Path("/run/netns/wan").exists() and all(_lab_site(inv, s) for s in inv.sites)


def _require_lab(configuration: Mapping | None, enabled: bool) -> Inventory | None:
    if not enabled:
        return None
    inv = inventory(configuration)
    if not is_lab(inv):
        raise ActivityFailed(f"this action shapes the local lab's WAN and the inventory {inv.path} is not the lab "
                             f"(or the lab is down): on real sites set `emulate_onprem_nat: false` and let your "
                             f"NAT/firewall provide the condition")
    return inv


def _nft(*args: str) -> None:
    try:
        run(["ip", "netns", "exec", "wan", "nft", *args], what="lab WAN router")
    except LabError as exc:
        raise ActivityFailed(str(exc)) from None


@activity
def block_inbound_ike(from_site: str = "fault", to_site: str = "peer", seconds: float = 120,
                      enabled: bool = True, configuration: Mapping | None = None,
                      secrets: Mapping | None = None) -> dict[str, Any]:
    """Drop new IKE_SA_INIT requests from the `from_site` gateway to the `to_site` gateway on the lab's WAN for
    `seconds` (then the block lapses by itself). Sites are roles (fault, peer, source, replica) or site names of the
    inventory. Existing SAs, responses and traffic the other way pass. With `enabled=False` does nothing (for real
    sites)."""
    inv = _require_lab(configuration, enabled)
    if inv is None:
        return {"enabled": False}
    lab_sites = []
    for word in (from_site, to_site):
        try:
            lab_site = _lab_site(inv, inv.resolve_site(word))
        except InventoryError as exc:
            raise ActivityFailed(f"block_inbound_ike: {exc}") from None
        if lab_site is None:
            raise ActivityFailed(f"block_inbound_ike: site {word!r} is not a lab gateway")
        lab_sites.append(lab_site)
    src, dst = GATEWAYS[lab_sites[0]]["wan_ip"], GATEWAYS[lab_sites[1]]["wan_ip"]
    try:
        seconds = max(1, int(float(seconds)))
    except (TypeError, ValueError):
        raise ActivityFailed(f"block_inbound_ike: seconds must be a number, not {seconds!r}") from None
    _nft("add", "element", "inet", "drpoc_wan", "ike_init_blocked", f"{{ {src} . {dst} timeout {int(seconds)}s }}")
    return {"enabled": True, "blocked": f"IKE_SA_INIT {src} -> {dst}", "lapses_after_seconds": int(seconds)}


@activity
def unblock_inbound_ike(enabled: bool = True, configuration: Mapping | None = None,
                        secrets: Mapping | None = None) -> dict[str, Any]:
    """Lift every IKE block on the lab's WAN (idempotent). Returns how many IKE_SA_INIT requests were dropped."""
    if _require_lab(configuration, enabled) is None:
        return {"enabled": False}
    _nft("flush", "set", "inet", "drpoc_wan", "ike_init_blocked")
    out = run(["ip", "netns", "exec", "wan", "nft", "list", "counter", "inet", "drpoc_wan", "ike_init_dropped"],
              check=False).stdout
    dropped = next((int(line.split()[1]) for line in out.splitlines() if line.strip().startswith("packets")), None)
    return {"enabled": True, "ike_init_dropped_total": dropped}


def undo_lab_faults(inv: Inventory) -> None:
    """For `drpoc recover`: lift the lab's emulated network conditions when the inventory is the lab and it is up
    (nothing to do anywhere else)."""
    if is_lab(inv):
        unblock_inbound_ike(configuration={"inventory": str(inv.path)})
