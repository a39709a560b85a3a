"""Chaos Toolkit probes of the strongSwan site-to-site tunnel (adapters over services.gateway)."""
from __future__ import annotations

from typing import Any, Mapping

from ..activity import activity
from ..services import gateway
from ..services.context import connection_name, inventory

__all__ = ["tunnel_status", "tunnel_established"]


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
    status = gateway.read_status(inv, site, tool)
    return {"site": site, "host": inv.gateway(site).host, "connection": connection_name(inv, site, connection),
            "state": gateway.state_of(inv, site, status, connection), "status": status.to_dict()}


@activity
def tunnel_established(site: str, connection: str | None = None, tool: str = "ipsec",
                       configuration: Mapping | None = None, secrets: Mapping | None = None) -> bool:
    """True when the gateway of `site` shows IKE_SA ESTABLISHED and CHILD_SA INSTALLED with the expected selectors
    (the inventory's local and remote subnets) for the connection. Use with `tolerance: true`."""
    return gateway.tunnel_state(inventory(configuration), site, connection, tool) == "up"
