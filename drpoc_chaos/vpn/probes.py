"""Probes of the strongSwan site-to-site tunnel, over SSH on each gateway (`sudo -n ipsec statusall`)."""
from __future__ import annotations

from typing import Any, Mapping

from ..activity import activity, connection_name, gateway_host, inventory
from ..remote import run
from .status import VpnStatus, parse_ipsec_statusall, parse_swanctl_list_sas

__all__ = ["tunnel_status", "tunnel_established"]

# what each tool is asked, and how its output is read
_TOOLS = {
    "ipsec": (["ipsec", "statusall"], parse_ipsec_statusall),
    "swanctl": (["swanctl", "--list-sas"], parse_swanctl_list_sas),
}


def read_status(inv, site: str, tool: str = "ipsec", pool=None) -> VpnStatus:
    """Run the status command on the site's gateway and parse it (raises on unreachable host / unparseable text)."""
    if tool not in _TOOLS:
        raise ValueError(f"unknown status tool {tool!r}: use 'ipsec' or 'swanctl'")
    cmd, parse = _TOOLS[tool]
    host = gateway_host(inv, site)
    # not check=True: `ipsec statusall` exits non-zero when charon is not running, and the parser's message
    # (e.g. "is charon running?") is more useful than a bare exit status
    result = run(host, cmd, sudo=True, **({"pool": pool} if pool else {}))
    said = _first_error_line(result.stderr)
    try:
        status = parse(result.stdout)
    except ValueError as exc:
        if result.exit_status != 0:
            exc = "is strongSwan's charon running on this gateway?"
        raise ValueError(f"{host.name}: could not read `sudo -n {' '.join(cmd)}` (exit {result.exit_status}"
                         + (f": {said}" if said else "") + f"): {exc}") from None
    if result.exit_status != 0 and not status.ike_sas and not status.connections:
        raise ValueError(f"{host.name}: `sudo -n {' '.join(cmd)}` exited {result.exit_status}"
                         + (f" ({said})" if said else "") + ": is strongSwan's charon running on this gateway?")
    return status


def _first_error_line(stderr: str) -> str:
    """The line worth showing: swanctl prints a dozen "plugin … failed to load" lines and its usage text."""
    lines = [l.strip() for l in stderr.splitlines() if l.strip() and not l.startswith("plugin '")]
    wanted = [l for l in lines if "failed" in l or "error" in l.lower()]
    return (wanted or lines or [""])[0][:200]


def state_of(inv, site: str, status: VpnStatus, connection: str | None = None) -> str:
    gw = inv.gateway(site)
    return status.tunnel_state(connection_name(inv, site, connection), [gw.local_subnet], [gw.remote_subnet])


@activity
def tunnel_status(site: str, connection: str | None = None, tool: str = "ipsec",
                  configuration: Mapping | None = None, secrets: Mapping | None = None) -> dict[str, Any]:
    """The tunnel as the gateway of `site` sees it.

    Runs `sudo -n ipsec statusall` (or `swanctl --list-sas` with tool="swanctl") on the site's gateway and returns
    {"site", "host", "connection", "state": "up" | "connecting" | "down", "status": <parsed model>}. "up" means an
    IKE_SA ESTABLISHED with a CHILD_SA INSTALLED whose traffic selectors are the inventory's subnets.
    Raises ActivityFailed when the gateway cannot be reached or the output cannot be read.
    """
    inv = inventory(configuration)
    status = read_status(inv, site, tool)
    return {"site": site, "host": inv.gateway(site).host, "connection": connection_name(inv, site, connection),
            "state": state_of(inv, site, status, connection), "status": status.to_dict()}


@activity
def tunnel_established(site: str, connection: str | None = None, tool: str = "ipsec",
                       configuration: Mapping | None = None, secrets: Mapping | None = None) -> bool:
    """True when the gateway of `site` shows IKE_SA ESTABLISHED and CHILD_SA INSTALLED with the expected selectors
    (the inventory's local and remote subnets) for the connection. Use with `tolerance: true`."""
    inv = inventory(configuration)
    return state_of(inv, site, read_status(inv, site, tool), connection) == "up"
