"""Actions on the strongSwan tunnel: take it down (the fault), bring it up, and recover it in the seed's order.

`ipsec up`/`ipsec down` exit 0 even when they fail, and in the seed's recovery order the second `up` prints
"establishing connection ... failed" because the tunnel is already up (docs/LAB.md, trap 2). So every action here judges
by the status the gateways report afterwards, never by exit code or by what `ipsec` printed.
"""
from __future__ import annotations

import time
from typing import Any, Mapping

from chaoslib.exceptions import ActivityFailed

from ..activity import activity, connection_name, gateway_host, inventory, logger
from ..drill import state as drill
from ..remote import RemoteError, run
from .probes import read_status, state_of
from .status import parse_ipsec_up_output

__all__ = ["tunnel_down", "tunnel_up", "recover_tunnel"]


def _ipsec(inv, site: str, verb: str, connection: str, timeout: float = 60) -> dict:
    """One `ipsec up|down`. `ipsec up` blocks until IKE succeeds or gives up (~14 s of retransmits on the lab), so a
    caller with a deadline passes what is left of it; past it the step is recorded as timed out (charon goes on
    trying on the gateway) and the caller judges by status as always."""
    host = gateway_host(inv, site)
    started = time.monotonic()
    step = {"site": site, "host": host.name, "command": f"ipsec {verb} {connection}"}
    try:
        r = run(host, ["ipsec", verb, connection], sudo=True, timeout=timeout)
    except RemoteError as exc:
        if exc.result is not None or "timed out" not in str(exc):
            raise
        return {**step, "exit_status": None, "timed_out": True, "seconds": round(time.monotonic() - started, 3),
                "said": parse_ipsec_up_output("")}
    return {**step, "exit_status": r.exit_status, "seconds": round(time.monotonic() - started, 3),
            "said": parse_ipsec_up_output(r.stdout + r.stderr)}


def _wait_state(inv, sites: list[str], want: str, timeout: float, connection: str | None = None,
                interval: float = 0.1) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        states = {s: state_of(inv, s, read_status(inv, s), connection) for s in sites}
        if all(v == want for v in states.values()) or time.monotonic() >= deadline:
            return states
        time.sleep(interval)


@activity
def tunnel_down(site: str, connection: str | None = None, fault: bool = True, verify_timeout: float = 10,
                configuration: Mapping | None = None, secrets: Mapping | None = None) -> dict[str, Any]:
    """Take the tunnel down from the gateway of `site`: `sudo -n ipsec down <connection>` (the seed's fault).

    Waits until that gateway shows no established SA (up to `verify_timeout` s). With `fault=True` (default) a
    running drill records the moment as `fault_injected`. Returns the command, what it said, and the state seen.
    Raises ActivityFailed if the tunnel is still up afterwards.
    """
    inv = inventory(configuration)
    conn = connection_name(inv, site, connection)
    known = [c.name for c in read_status(inv, site).connections]
    if known and conn not in known:
        # `ipsec down <typo>` exits 0 and does nothing: the drill would believe a fault that never happened
        raise ActivityFailed(f"{inv.gateway(site).host}: no connection {conn!r} in `ipsec statusall` (known: "
                             f"{', '.join(sorted(set(known)))}): fix `connection` in the inventory or experiment")
    step = _ipsec(inv, site, "down", conn)
    if fault:
        d = drill.current()
        if d is not None:
            d.fault_injected = True
            d.event("fault_injected", site=site, connection=conn)
    states = _wait_state(inv, [site], "down", verify_timeout, connection)
    if states[site] == "up":
        raise ActivityFailed(f"{step['host']}: `ipsec down {conn}` left the tunnel up: check the conn name in "
                             f"the inventory (`ipsec statusall` lists the connections)")
    return {"step": step, "state": states[site]}


@activity
def tunnel_up(site: str, connection: str | None = None, timeout: float = 30, expect: str = "up",
              configuration: Mapping | None = None, secrets: Mapping | None = None) -> dict[str, Any]:
    """`sudo -n ipsec up <connection>` on the gateway of `site` only, then check the tunnel.

    `expect="up"` (default): wait up to `timeout` s for the tunnel; raise ActivityFailed if it does not come up.
    `expect="down"`: the scenario demonstrates a failing one-sided recovery — raise ActivityFailed if the tunnel did
    come up (the symptom was not reproduced). `expect="any"`: report only. Returns {"step", "state",
    "established"}; the step holds what `ipsec` said ("peer not responding", retransmits, …).
    """
    if expect not in ("up", "down", "any"):
        raise ActivityFailed("tunnel_up: expect must be 'up', 'down' or 'any'")
    inv = inventory(configuration)
    conn = connection_name(inv, site, connection)
    step = _ipsec(inv, site, "up", conn, timeout=max(timeout, 120))
    states = _wait_state(inv, [site], "up", timeout if expect == "up" else 0.5, connection)
    ok = states[site] == "up"
    said = "; ".join(step["said"]["messages"][-3:])
    if expect == "up" and not ok:
        raise ActivityFailed(f"{step['host']}: tunnel {conn} not up {timeout:g}s after `ipsec up` "
                             f"(state {states[site]}; ipsec said: {said})")
    if expect == "down" and ok:
        raise ActivityFailed(f"{step['host']}: the one-sided `ipsec up {conn}` established the tunnel: the "
                             f"expected failure was not reproduced (ipsec said: {said})")
    return {"step": step, "state": states[site], "established": ok}


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
    d = drill.current()
    if only_if_fault_injected and (d is None or not d.fault_injected):
        return {"skipped": "no fault was injected by this run", "attempts": []}
    inv = inventory(configuration)
    fault_site, peer_site = inv.drill.fault_site, inv.drill.peer_site
    sites = [fault_site, peer_site]
    conn = connection or inv.drill.connection
    started = time.monotonic()
    initial = {s: state_of(inv, s, read_status(inv, s), conn) for s in sites}
    if all(v == "up" for v in initial.values()):
        if d is not None:
            d.tunnel_restored = True
        return {"already_up": True, "attempts": [], "states": initial, "seconds": 0.0}
    if d is not None and not d.has_event("recovery_started"):
        d.event("recovery_started")
    attempts: list[dict] = []
    backoff = 1.0
    while True:
        attempt: dict[str, Any] = {"attempt": len(attempts) + 1, "t": round(time.monotonic() - started, 3),
                                   "steps": []}
        for site, verb in ((fault_site, "down"), (peer_site, "down"), (peer_site, "up"), (fault_site, "up")):
            left = timeout - (time.monotonic() - started)
            attempt["steps"].append(_ipsec(inv, site, verb, conn, timeout=max(2.0, left)))
        remaining = timeout - (time.monotonic() - started)
        states = _wait_state(inv, sites, "up", max(0.0, min(settle_seconds, remaining)), conn)
        attempt["states"] = states
        attempt["established"] = all(v == "up" for v in states.values())
        attempts.append(attempt)
        if attempt["established"]:
            if d is not None:
                d.tunnel_restored = True
                d.event("tunnel_up", attempts=len(attempts))
            return {"already_up": False, "attempts": attempts, "states": states,
                    "seconds": round(time.monotonic() - started, 3)}
        if time.monotonic() - started + backoff >= timeout:
            raise ActivityFailed(
                f"tunnel {conn} not back on both gateways after {len(attempts)} attempt(s) in {timeout:g}s "
                f"(states {states}); check `sudo ipsec statusall` on {', '.join(inv.gateway(s).host for s in sites)}"
                f" and run `drpoc recover` once the cause is fixed")
        logger.warning("tunnel %s not back after attempt %d (%s); retrying in %.0fs", conn, len(attempts), states,
                       backoff)
        time.sleep(backoff)
        backoff = min(backoff * 2, 8)
