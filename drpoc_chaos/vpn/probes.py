"""Chaos Toolkit probes of the strongSwan site-to-site tunnel (adapters over services.gateway)."""
from __future__ import annotations

from typing import Any, Mapping

from ..activity import activity, connection_arg
from ..services import gateway
from ..services.context import inventory

__all__ = ["tunnel_status", "tunnel_established"]


@activity
def tunnel_status(site: str = "fault", connection: str | None = None, tool: str | None = None,
                  configuration: Mapping | None = None, secrets: Mapping | None = None) -> dict[str, Any]:
    """The tunnel as the gateway of `site` sees it.

    `site` is a role — `fault` (default: where the drill injects its fault) or `peer` (the other side), `source` or
    `replica` (the sites of the databases) — or a site name of the inventory. Reads the status with the gateway's
    control (`ipsec statusall`, or `swanctl --list-sas`; `tool` overrides) and returns {"site", "host",
    "connection", "child", "control", "state": "up" | "connecting" | "down", "status": <parsed model>}. "up" means an
    IKE_SA ESTABLISHED with a CHILD_SA INSTALLED whose traffic selectors are the inventory's subnets.
    Raises ActivityFailed when the gateway cannot be reached or the output cannot be read.
    """
    inv = inventory(configuration)
    site = inv.resolve_site(site)
    connection = connection_arg("tunnel_status", connection)
    status = gateway.read_status(inv, site, tool)
    ike, child = gateway.names(inv, site, connection)
    return {"site": site, "host": inv.gateway(site).host, "connection": ike, "child": child,
            "control": tool or gateway.control_of(inv, site),
            "state": gateway.state_of(inv, site, status, connection), "status": status.to_dict()}


@activity
def tunnel_established(site: str = "fault", connection: str | None = None, tool: str | None = None,
                       configuration: Mapping | None = None, secrets: Mapping | None = None) -> bool:
    """True when the gateway of `site` (a role — fault, peer, source, replica — or a site name) shows IKE_SA
    ESTABLISHED and CHILD_SA INSTALLED with the expected selectors (the inventory's local and remote subnets) for
    the connection. Use with `tolerance: true`."""
    inv = inventory(configuration)
    return gateway.tunnel_state(inv, inv.resolve_site(site), connection_arg("tunnel_established", connection),
                                tool) == "up"
