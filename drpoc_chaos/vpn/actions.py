"""Chaos Toolkit actions on the strongSwan tunnel (adapters over services.gateway): take it down (the fault), bring
it up, and recover it in the seed's order. Every action judges by the status the gateways report afterwards."""
from __future__ import annotations

from typing import Any, Mapping

from ..activity import activity, connection_arg, number
from ..core import recorder
from ..services import gateway
from ..services.context import inventory

__all__ = ["tunnel_down", "tunnel_up", "recover_tunnel"]


@activity
def tunnel_down(site: str = "fault", connection: str | None = None, fault: bool = True, verify_timeout: float = 10,
                configuration: Mapping | None = None, secrets: Mapping | None = None) -> dict[str, Any]:
    """Take the tunnel down from the gateway of `site` (a role — fault by default, peer, source, replica — or a
    site name): `ipsec down <connection>` (the seed's fault), or `swanctl --terminate --ike <connection>` on a
    swanctl gateway, through the gateway helper.

    Waits until that gateway shows no established SA (up to `verify_timeout` s). With `fault=True` (default) a
    running drill records the moment as `fault_injected`. Returns the command, what it said, and the state seen.
    Raises ActivityFailed if the tunnel is still up afterwards.
    """
    inv = inventory(configuration)
    return gateway.take_down(inv, inv.resolve_site(site), connection_arg("tunnel_down", connection), fault=fault,
                             verify_timeout=number("tunnel_down", "verify_timeout", verify_timeout, minimum=0))


@activity
def tunnel_up(site: str = "fault", connection: str | None = None, timeout: float = 30, expect: str = "up",
              configuration: Mapping | None = None, secrets: Mapping | None = None) -> dict[str, Any]:
    """`ipsec up <connection>` (or `swanctl --initiate --child <child> --ike <connection>`) on the gateway of `site`
    only (a role — fault by default, peer, source, replica — or a site name), then check the tunnel.

    `expect="up"` (default): wait up to `timeout` s for the tunnel; raise ActivityFailed if it does not come up.
    `expect="down"`: the scenario demonstrates a failing one-sided recovery — raise ActivityFailed if the tunnel did
    come up (the symptom was not reproduced). `expect="any"`: report only. Returns {"step", "state",
    "established"}; the step holds what `ipsec` said ("peer not responding", retransmits, …).
    """
    timeout = number("tunnel_up", "timeout", timeout, minimum=0)
    inv = inventory(configuration)
    return gateway.bring_up(inv, inv.resolve_site(site), connection_arg("tunnel_up", connection), timeout=timeout,
                            expect=expect)


@activity
def recover_tunnel(connection: str | None = None, timeout: float = 60, settle_seconds: float = 5,
                   only_if_fault_injected: bool = False, configuration: Mapping | None = None,
                   secrets: Mapping | None = None) -> dict[str, Any]:
    """Bring the tunnel back in the seed's proven order and wait until both gateways show it established.

    Order: `ipsec down` on the fault site (AWS in the seed), `ipsec down` then `ipsec up` on the peer (on-prem),
    then `ipsec up` on the fault site. An attempt succeeds when both gateways show IKE_SA ESTABLISHED and CHILD_SA
    INSTALLED with the right selectors within `settle_seconds`; otherwise the order is replayed with backoff (1, 2,
    4 … s) until `timeout`. Every attempt is in the output. Safe to run when the tunnel is already up (then nothing
    is done). With `only_if_fault_injected`, does nothing unless this run's drill injected a fault (for rollbacks:
    never "repair" a tunnel someone else took down). Raises ActivityFailed when the timeout passes.
    """
    d = recorder.current()
    if only_if_fault_injected and (d is None or not d.fault_injected):
        return {"skipped": "no fault was injected by this run", "attempts": []}
    return gateway.recover(inventory(configuration), connection_arg("recover_tunnel", connection),
                           timeout=number("recover_tunnel", "timeout", timeout, minimum=0),
                           settle_seconds=number("recover_tunnel", "settle_seconds", settle_seconds, minimum=0))
