"""Lab-only network conditions that real sites have by nature, switched on by the scenarios that need them.

`block_inbound_ike` makes the lab's WAN router drop new IKE_SA_INIT requests initiated from one gateway towards the
other — what an on-prem gateway behind NAT (no inbound port forwarding) or a one-way firewall does, and the cause of
the seed's "peer not responding" when only the AWS side is brought back. The block carries a timeout so it lapses by
itself (the dead-man's switch must still be able to restore the tunnel if the orchestrator dies).

These actions act on the local lab as root and refuse anything else: on real sites, your NAT/firewall is the fault.
"""
from __future__ import annotations

import os
import signal as sig
from pathlib import Path
from typing import Any, Mapping

from chaoslib.exceptions import ActivityFailed

from ..activity import activity
from ..inventory import Inventory, InventoryError
from ..services.context import inventory
from .context import LabContext
from .daemons import spawn, wait_mariadb
from .system import LabError, pid_alive, run, which
from .topology import Paths, Topology

# the activities (undo_lab_faults is for `drpoc recover`)
__all__ = ["block_inbound_ike", "unblock_inbound_ike", "lose_source", "bring_source_back"]


def _topo() -> Topology:
    """The running lab's topology (lab.json says how many sites it has)."""
    return LabContext().topo


def _lab_site(inv: Inventory, site: str) -> str | None:
    """The lab's own site behind an inventory site, recognised by its gateway's published SSH endpoint (so an
    inventory that names the lab's sites differently still maps onto them); None when it is not a lab gateway."""
    host = inv.host(inv.gateway(site).host)
    if host.address not in ("127.0.0.1", "localhost"):
        return None
    return next((h.site for h in _topo().hosts if h.role == "gateway" and h.ssh_port == host.port), None)


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
    gateways = _topo().gateways
    src, dst = gateways[lab_sites[0]]["wan_ip"], gateways[lab_sites[1]]["wan_ip"]
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
    (nothing to do anywhere else). A lost source (failover drill) that is frozen or isolated comes back fenced —
    never writable behind the recovery's back; whether it becomes the primary again is the failover's recovery to
    decide. A crashed one is restarted by that recovery (return_lost_source)."""
    if is_lab(inv):
        unblock_inbound_ike(configuration={"inventory": str(inv.path), "pair": inv.pair})
        try:
            host = _source_host(inv)
        except ActivityFailed:
            return
        pid = _mariadbd_pid(host) if (Paths().pids / f"mariadbd-{host}").exists() else None
        if pid is not None and pid_alive(pid) and (_frozen(pid) or _isolated(host)):
            _return_fenced(LabContext(), host, pid)


# --- the AWS site lost (the failover drill) ------------------------------------------------------------------------

LOSS_MODES = ("crash", "freeze", "isolate")
_ISOLATE_TABLE = "drpoc_isolate"


def _source_host(inv: Inventory) -> str:
    """The lab host of the inventory's source database (recognised by its published MySQL port)."""
    src = inv.source
    for h in _topo().hosts:
        if h.role == "database" and h.mysql_port == src.port and src.address in ("127.0.0.1", "localhost"):
            return h.name
    raise ActivityFailed(f"the source {src} is not a lab database: the lab's loss modes act on the lab only")


def _mariadbd_pid(host: str) -> int:
    try:
        return int((Paths().pids / f"mariadbd-{host}").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        raise ActivityFailed(f"no recorded mariadbd pid for lab host {host}: is the lab up?") from None


@activity
def lose_source(mode: str = "crash", enabled: bool = True, configuration: Mapping | None = None,
                secrets: Mapping | None = None) -> dict[str, Any]:
    """Lab only: the source's site is lost. `crash` — mariadbd killed (SIGKILL: acknowledged writes still in flight to
    the replica are gone with the site); `freeze` — mariadbd stopped (SIGSTOP: it holds its connections and answers
    nothing); `isolate` — the server lives on but nothing reaches it (its MySQL and SSH ports drop every packet).
    The tunnel fault is separate (tunnel_down). Undone by bring_source_back (or `drpoc recover`)."""
    inv = _require_lab(configuration, enabled)
    if inv is None:
        return {"enabled": False}
    if mode not in LOSS_MODES:
        raise ActivityFailed(f"lose_source: mode must be one of {', '.join(LOSS_MODES)}, not {str(mode)[:40]!r}")
    host = _source_host(inv)
    if mode == "isolate":
        _isolate(host)
        return {"enabled": True, "mode": mode, "host": host}
    pid = _mariadbd_pid(host)  # our own daemon, by the pid the lab recorded when it started it
    os.kill(pid, sig.SIGKILL if mode == "crash" else sig.SIGSTOP)
    return {"enabled": True, "mode": mode, "host": host, "pid": pid}


def _isolate(host: str) -> None:
    # MySQL and SSH drop every packet, established connections included: nothing reaches the server
    run(["ip", "netns", "exec", host, "nft", "-f", "-"], input=(
        f"table inet {_ISOLATE_TABLE}\ndelete table inet {_ISOLATE_TABLE}\ntable inet {_ISOLATE_TABLE} {{\n"
        "  chain input { type filter hook input priority 0; policy accept; tcp dport { 22, 3306 } drop; }\n}\n"),
        what=f"lab host {host}")


def _isolated(host: str) -> bool:
    return run(["ip", "netns", "exec", host, "nft", "list", "table", "inet", _ISOLATE_TABLE],
               check=False).returncode == 0


def _frozen(pid: int) -> bool:
    """Stopped by SIGSTOP: state T in /proc/<pid>/stat (the field after the parenthesised command)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
    except (OSError, IndexError):
        return False


def _unisolate(host: str) -> None:
    run(["ip", "netns", "exec", host, "nft", "delete", "table", "inet", _ISOLATE_TABLE], check=False)


def _return_fenced(ctx: LabContext, host: str, pid: int) -> None:
    """A live (frozen or isolated) source back on the network, fenced first: isolated while it is thawed and set
    read_only over its own unix socket, so no client can write to it in between (STONITH's order: cut, then act)."""
    _isolate(host)
    os.kill(pid, sig.SIGCONT)  # a no-op unless it was frozen
    wait_mariadb(ctx, host, timeout=60)
    ctx.sql(host, "SET GLOBAL read_only = ON;")
    _unisolate(host)


@activity
def bring_source_back(enabled: bool = True, configuration: Mapping | None = None,
                      secrets: Mapping | None = None) -> dict[str, Any]:
    """Lab only: the lost site comes back **fenced** — a crashed mariadbd restarts with --read-only; a frozen or
    isolated one is thawed and fenced while still cut off, then reachable again. Idempotent. A former primary must
    never take writes again before the drill decides (errant transactions)."""
    inv = _require_lab(configuration, enabled)
    if inv is None:
        return {"enabled": False}
    return return_lost_source(inv)


def return_lost_source(inv: Inventory) -> dict[str, Any]:
    """bring_source_back for a lab inventory (the failover recovery's way to bring the lab's source back)."""
    host = _source_host(inv)
    ctx = LabContext()
    pid = _mariadbd_pid(host)
    if not pid_alive(pid):
        _unisolate(host)
        spawn(ctx, host, f"mariadbd-{host}", [which("mariadbd") or "/usr/sbin/mariadbd", "--read-only"])
        wait_mariadb(ctx, host, timeout=60)
        how = "restarted read-only"
    else:
        _return_fenced(ctx, host, pid)
        how = "running"
    return {"enabled": True, "host": host, "mariadbd": how, "fenced": True}
