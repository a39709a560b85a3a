"""Gateway control for one strongSwan tunnel: read its status, take it down, bring it up, recover it in the seed's
order — over SSH on each gateway (`sudo -n ipsec …`).

`ipsec up`/`ipsec down` exit 0 even when they fail, and in the seed's recovery order the second `up` prints
"establishing connection ... failed" because the tunnel is already up (docs/LAB.md). So every operation judges by the
status the gateways report afterwards, never by exit code or by what `ipsec` printed. A running drill is told of
the fault, the start of recovery and the tunnel's return through core.recorder.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from ..core import recorder
from ..core.clock import wait_until
from ..inventory import Inventory
from ..remote import RemoteError, run
from ..vpn.status import VpnStatus, parse_ipsec_statusall, parse_ipsec_up_output, parse_swanctl_list_sas
from .context import connection_name, gateway_host
from .errors import StepFailed, Unreadable

logger = logging.getLogger("chaostoolkit")

# what each tool is asked, and how its output is read
_TOOLS = {
    "ipsec": (["ipsec", "statusall"], parse_ipsec_statusall),
    "swanctl": (["swanctl", "--list-sas"], parse_swanctl_list_sas),
}


def read_status(inv: Inventory, site: str, tool: str = "ipsec", pool=None) -> VpnStatus:
    """Run the status command on the site's gateway and parse it. Raises RemoteError when the host cannot be
    reached, StepFailed when the output cannot be read."""
    if tool not in _TOOLS:
        raise Unreadable(f"unknown status tool {tool!r}: use 'ipsec' or 'swanctl'")
    cmd, parse = _TOOLS[tool]
    host = gateway_host(inv, site)
    # not check=True: `ipsec statusall` exits non-zero when charon is not running, and the parser's message
    # (e.g. "is charon running?") is more useful than a bare exit status
    result = run(host, cmd, sudo=True, **({"pool": pool} if pool else {}))
    said = _first_error_line(result.stderr)
    try:
        status = parse(result.stdout)
    except ValueError as exc:
        why = "is strongSwan's charon running on this gateway?" if result.exit_status != 0 else str(exc)
        raise Unreadable(f"{host.name}: could not read `sudo -n {' '.join(cmd)}` (exit {result.exit_status}"
                         + (f": {said}" if said else "") + f"): {why}") from None
    if result.exit_status != 0 and not status.ike_sas and not status.connections:
        raise Unreadable(f"{host.name}: `sudo -n {' '.join(cmd)}` exited {result.exit_status}"
                         + (f" ({said})" if said else "") + ": is strongSwan's charon running on this gateway?")
    return status


def _first_error_line(stderr: str) -> str:
    """The line worth showing: swanctl prints a dozen "plugin … failed to load" lines and its usage text."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and not line.startswith("plugin '")]
    wanted = [line for line in lines if "failed" in line or "error" in line.lower()]
    return (wanted or lines or [""])[0][:200]


def state_of(inv: Inventory, site: str, status: VpnStatus, connection: str | None = None) -> str:
    """up | connecting | down, with the inventory's subnets as the selectors an "up" tunnel must carry."""
    gw = inv.gateway(site)
    return status.tunnel_state(connection_name(inv, site, connection), [gw.local_subnet], [gw.remote_subnet])


def tunnel_state(inv: Inventory, site: str, connection: str | None = None, tool: str = "ipsec") -> str:
    return state_of(inv, site, read_status(inv, site, tool), connection)


def ipsec(inv: Inventory, site: str, verb: str, connection: str, timeout: float = 60) -> dict[str, Any]:
    """One `ipsec up|down`. `ipsec up` blocks until IKE succeeds or gives up (~14 s of retransmits on the lab), so a
    caller with a deadline passes what is left of it; past it the step is recorded as timed out (charon goes on
    trying on the gateway) and the caller judges by status as always."""
    host = gateway_host(inv, site)
    started = time.monotonic()
    step: dict[str, Any] = {"site": site, "host": host.name, "command": f"ipsec {verb} {connection}"}
    try:
        r = run(host, ["ipsec", verb, connection], sudo=True, timeout=timeout)
    except RemoteError as exc:
        if exc.result is not None or exc.kind != "timeout":
            raise
        return {**step, "exit_status": None, "timed_out": True, "seconds": round(time.monotonic() - started, 3),
                "said": parse_ipsec_up_output("")}
    return {**step, "exit_status": r.exit_status, "seconds": round(time.monotonic() - started, 3),
            "said": parse_ipsec_up_output(r.stdout + r.stderr)}


def wait_state(inv: Inventory, sites: list[str], want: str, timeout: float, connection: str | None = None,
               interval: float = 0.1) -> dict[str, str]:
    """Poll the gateways of `sites` until all show `want` (bounded); returns the last states seen."""
    _, states = wait_until(lambda: {s: tunnel_state(inv, s, connection) for s in sites}, timeout, interval,
                           done=lambda st: all(v == want for v in st.values()))
    return states


def take_down(inv: Inventory, site: str, connection: str | None = None, *, fault: bool = True,
              verify_timeout: float = 10) -> dict[str, Any]:
    """`ipsec down <connection>` on the gateway of `site` (the seed's fault), then wait until that gateway shows no
    established SA. With `fault`, a running drill records the moment as `fault_injected`."""
    conn = connection_name(inv, site, connection)
    known = [c.name for c in read_status(inv, site).connections]
    if known and conn not in known:
        # `ipsec down <typo>` exits 0 and does nothing: the drill would believe a fault that never happened
        raise StepFailed(f"{inv.gateway(site).host}: no connection {conn!r} in `ipsec statusall` (known: "
                         f"{', '.join(sorted(set(known)))}): fix `connection` in the inventory or experiment")
    step = ipsec(inv, site, "down", conn)
    if fault:
        recorder.fault_injected(site=site, connection=conn)
    states = wait_state(inv, [site], "down", verify_timeout, connection)
    if states[site] == "up":
        raise StepFailed(f"{step['host']}: `ipsec down {conn}` left the tunnel up: check the conn name in the "
                         f"inventory (`ipsec statusall` lists the connections)")
    return {"step": step, "state": states[site]}


def bring_up(inv: Inventory, site: str, connection: str | None = None, *, timeout: float = 30,
             expect: str = "up") -> dict[str, Any]:
    """`ipsec up <connection>` on the gateway of `site` only, then check the tunnel. `expect="up"`: it must come up
    within `timeout`; `"down"`: it must not (the one-sided recovery's symptom); `"any"`: report only."""
    if expect not in ("up", "down", "any"):
        raise StepFailed("tunnel_up: expect must be 'up', 'down' or 'any'")
    conn = connection_name(inv, site, connection)
    step = ipsec(inv, site, "up", conn, timeout=max(timeout, 120))
    states = wait_state(inv, [site], "up", timeout if expect == "up" else 0.5, connection)
    ok = states[site] == "up"
    said = "; ".join(step["said"]["messages"][-3:])
    if expect == "up" and not ok:
        raise StepFailed(f"{step['host']}: tunnel {conn} not up {timeout:g}s after `ipsec up` "
                         f"(state {states[site]}; ipsec said: {said})")
    if expect == "down" and ok:
        raise StepFailed(f"{step['host']}: the one-sided `ipsec up {conn}` established the tunnel: the expected "
                         f"failure was not reproduced (ipsec said: {said})")
    return {"step": step, "state": states[site], "established": ok}


def recover(inv: Inventory, connection: str | None = None, *, timeout: float = 60,
            settle_seconds: float = 5) -> dict[str, Any]:
    """Bring the tunnel back in the seed's proven order and wait until both gateways show it established.

    Order: `ipsec down` on the fault site (AWS in the seed), `ipsec down` then `ipsec up` on the peer (on-prem), then
    `ipsec up` on the fault site. An attempt succeeds when both gateways show IKE_SA ESTABLISHED and CHILD_SA
    INSTALLED with the right selectors within `settle_seconds`; otherwise the order is replayed with backoff (1, 2,
    4 … s) until `timeout`. Nothing is done when the tunnel is already up. Raises StepFailed past the timeout."""
    fault_site, peer_site = inv.drill.fault_site, inv.drill.peer_site
    sites = [fault_site, peer_site]
    conn = connection or inv.drill.connection
    started = time.monotonic()
    initial = {s: tunnel_state(inv, s, conn) for s in sites}
    if all(v == "up" for v in initial.values()):
        recorder.tunnel_restored(already_up=True)
        return {"already_up": True, "attempts": [], "states": initial, "seconds": 0.0}
    recorder.recovery_started()
    attempts: list[dict] = []
    backoff = 1.0
    while True:
        attempt: dict[str, Any] = {"attempt": len(attempts) + 1, "t": round(time.monotonic() - started, 3),
                                   "steps": []}
        for site, verb in ((fault_site, "down"), (peer_site, "down"), (peer_site, "up"), (fault_site, "up")):
            left = timeout - (time.monotonic() - started)
            attempt["steps"].append(ipsec(inv, site, verb, conn, timeout=max(2.0, left)))
        remaining = timeout - (time.monotonic() - started)
        states = wait_state(inv, sites, "up", max(0.0, min(settle_seconds, remaining)), conn)
        attempt["states"] = states
        attempt["established"] = all(v == "up" for v in states.values())
        attempts.append(attempt)
        if attempt["established"]:
            recorder.tunnel_restored(already_up=False, attempts=len(attempts))
            return {"already_up": False, "attempts": attempts, "states": states,
                    "seconds": round(time.monotonic() - started, 3)}
        if time.monotonic() - started + backoff >= timeout:
            raise StepFailed(
                f"tunnel {conn} not back on both gateways after {len(attempts)} attempt(s) in {timeout:g}s "
                f"(states {states}); check `sudo ipsec statusall` on {', '.join(inv.gateway(s).host for s in sites)}"
                f" and run `drpoc recover` once the cause is fixed")
        logger.warning("tunnel %s not back after attempt %d (%s); retrying in %.0fs", conn, len(attempts), states,
                       backoff)
        time.sleep(backoff)
        backoff = min(backoff * 2, 8)
