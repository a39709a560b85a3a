"""Gateway control for one strongSwan tunnel: read its status, take it down, bring it up, recover it in the seed's
order — on each gateway through the drill's gateway helper (gateway_helper.py), with the tool the gateway speaks.

Each gateway has a control (inventory `control:`): `ipsec` — the stroke commands of the seed runbook
(`ipsec statusall|down|up`, ipsec.conf), `swanctl` — vici, as strongSwan 6 and swanctl.conf gateways need
(`swanctl --list-sas`, `--terminate --ike`, `--initiate --child --ike`) — or `auto`: the helper asks on first
contact which tool has the connection loaded (stroke first, the seed's commands, then vici), and the drill records
the answer in its journal. Why swanctl's command line and not the `vici` Python package over a forwarded socket: the
dead-man's switch must drive the tunnel from the gateway alone, so the helper needs the command line anyway, and a
vici socket is root's — forwarding it would hand root's control socket to the drill's SSH key.

`ipsec up`/`ipsec down` exit 0 even when they fail, and in the seed's recovery order the second `up` prints
"establishing connection ... failed" because the tunnel is already up (docs/LAB.md). So every operation judges by the
status the gateways report afterwards, never by exit code or by what the tool printed. A running drill is told of
the fault, the start of recovery and the tunnel's return through core.recorder.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from ..core import recorder
from ..core.clock import wait_until
from ..inventory import Inventory
from ..remote import RemoteError
from ..vpn.status import (
    VpnStatus,
    parse_ipsec_statusall,
    parse_ipsec_up_output,
    parse_swanctl_list_conns,
    parse_swanctl_list_sas,
)
from .context import gateway_host
from .errors import StepFailed, Unreadable
from .gateway_helper import GatewayHelper

logger = logging.getLogger("chaostoolkit")

CONTROLS = ("ipsec", "swanctl")
# what each control's status looks like, and how it is read
_PARSERS: dict[str, Callable[[str], VpnStatus]] = {"ipsec": parse_ipsec_statusall, "swanctl": parse_swanctl_list_sas}
_STATUS_COMMAND = {"ipsec": "ipsec statusall", "swanctl": "swanctl --list-sas"}

# (inventory file, site, gateway address, port) → (control, detected): asked once per process
_resolved: dict[tuple[str, str, str, int], tuple[str, bool]] = {}
_resolved_lock = threading.Lock()


def helper(inv: Inventory, site: str) -> GatewayHelper:
    """The gateway helper of `site`'s gateway."""
    return GatewayHelper(gateway_host(inv, site), inv.gateway(site).helper)


def names(inv: Inventory, site: str, connection: str | None = None) -> tuple[str, str]:
    """(IKE connection, CHILD) to act on at `site`'s gateway. `connection` overrides both (a stroke conn's child has
    its name); the fault side follows `drill.connection` when the inventory sets one."""
    gw = inv.gateway(site)
    wanted = connection or (inv.drill.connection if site == inv.drill.fault_site else gw.connection)
    if wanted == gw.connection:
        return gw.connection, gw.child
    return wanted, wanted


def _key(inv: Inventory, site: str) -> tuple[str, str, str, int]:
    host = gateway_host(inv, site)
    return (str(inv.path), site, host.address, host.port)


def control_of(inv: Inventory, site: str, pool=None) -> str:
    """`ipsec` or `swanctl` for `site`'s gateway: the inventory's choice, or for `auto` what its helper detects."""
    gw = inv.gateway(site)
    if gw.control in CONTROLS:
        return gw.control
    key = _key(inv, site)
    with _resolved_lock:
        if key in _resolved:
            return _resolved[key][0]
    ike, _ = names(inv, site)
    r = helper(inv, site).run("detect", ike, **({"pool": pool} if pool is not None else {}))
    found = r.stdout.strip()
    if found not in CONTROLS:
        raise StepFailed(f"{gw.host}: strongSwan has no connection {ike!r} loaded (neither `ipsec statusall` nor "
                         f"`swanctl --list-conns` lists it): fix `connection` in the inventory, or load the "
                         f"connection on the gateway (`ipsec reload` / `swanctl --load-conns`)")
    with _resolved_lock:
        _resolved[key] = (found, True)
    logger.info("%s: control auto → %s", gw.host, found)
    recorder.event("gateway_control_detected", site=site, host=gw.host, control=found)
    return found


def controls(inv: Inventory) -> dict[str, dict[str, Any]]:
    """For the journal: each gateway's control, and whether it was detected (`auto`) or configured."""
    out = {}
    for name, site in inv.sites.items():
        gw = site.gateway
        entry: dict[str, Any] = {"host": gw.host, "configured": gw.control, "connection": gw.connection,
                                 "child": gw.child}
        if gw.control in CONTROLS:
            entry["control"] = gw.control
        else:
            with _resolved_lock:
                found = _resolved.get(_key(inv, name))
            entry["control"] = found[0] if found else None
        out[name] = entry
    return out


def forget_controls() -> None:
    """Detect again on next use (tests; a gateway moved to swanctl)."""
    with _resolved_lock:
        _resolved.clear()


def read_status(inv: Inventory, site: str, tool: str | None = None, pool=None) -> VpnStatus:
    """Read the status of `site`'s gateway with its control (or `tool`: ipsec | swanctl) and parse it. Raises
    RemoteError when the host cannot be reached, StepFailed when the output cannot be read."""
    if tool is not None and tool not in CONTROLS:
        raise Unreadable(f"unknown status tool {tool!r}: use 'ipsec' or 'swanctl'")
    control = tool or control_of(inv, site, pool)
    host = gateway_host(inv, site)
    # not check=True: `ipsec statusall` exits non-zero when charon is not running, and the parser's message
    # (e.g. "is charon running?") is more useful than a bare exit status
    result = helper(inv, site).run("status", control, **({"pool": pool} if pool is not None else {}))
    said = _first_error_line(result.stderr)
    what = f"`{_STATUS_COMMAND[control]}` (via {inv.gateway(site).helper})"
    try:
        status = _PARSERS[control](result.stdout)
    except ValueError as exc:
        why = "is strongSwan's charon running on this gateway?" if result.exit_status != 0 else str(exc)
        raise Unreadable(f"{host.name}: could not read {what} (exit {result.exit_status}"
                         + (f": {said}" if said else "") + f"): {why}") from None
    if result.exit_status != 0 and not status.ike_sas and not status.connections:
        raise Unreadable(f"{host.name}: {what} exited {result.exit_status}"
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
    ike, child = names(inv, site, connection)
    return status.tunnel_state(ike, [gw.local_subnet], [gw.remote_subnet], child_name=child)


def tunnel_state(inv: Inventory, site: str, connection: str | None = None, tool: str | None = None) -> str:
    return state_of(inv, site, read_status(inv, site, tool), connection)


def known_connections(inv: Inventory, site: str) -> dict[str, list[str]]:
    """{IKE connection: [children]} loaded on `site`'s gateway, as its control lists them."""
    control = control_of(inv, site)
    if control == "ipsec":
        return {c.name: [ch.name for ch in c.children] or [c.name] for c in read_status(inv, site).connections}
    r = helper(inv, site).run("conns", "swanctl")
    try:
        return parse_swanctl_list_conns(r.stdout)
    except ValueError as exc:
        raise Unreadable(f"{gateway_host(inv, site).name}: could not read `swanctl --list-conns`: {exc}") from None


def command_text(control: str, verb: str, ike: str, child: str) -> str:
    """The strongSwan command a step runs, as an operator would type it (for journals and messages)."""
    if control == "ipsec":
        return f"ipsec {verb} {child if verb == 'up' else ike}"
    if verb == "up":
        return f"swanctl --initiate --child {child} --ike {ike}"
    return f"swanctl --terminate --ike {ike}"


def tunnel_command(inv: Inventory, site: str, verb: str, connection: str | None = None,
                   timeout: float = 60) -> dict[str, Any]:
    """One down/up on `site`'s gateway. `ipsec up` blocks until IKE succeeds or gives up (~14 s of retransmits on
    the lab), so a caller with a deadline passes what is left of it; past it the step is recorded as timed out
    (charon goes on trying on the gateway) and the caller judges by status as always."""
    if verb not in ("down", "up"):
        raise StepFailed(f"unknown tunnel verb {verb!r}: use down or up")
    host = gateway_host(inv, site)
    control = control_of(inv, site)
    ike, child = names(inv, site, connection)
    started = time.monotonic()
    step: dict[str, Any] = {"site": site, "host": host.name, "control": control,
                            "command": command_text(control, verb, ike, child)}
    # swanctl detaches after its own --timeout, a second inside the SSH limit; `ipsec up` has none and is cut by
    # the SSH limit (the caller's deadline), as before
    args = [control, ike] if verb == "down" else [control, ike, child, str(max(1, min(int(timeout) - 1, 86400)))]
    try:
        r = helper(inv, site).run(verb, *args, timeout=timeout)
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
    """Take `site`'s connection down on its gateway (the seed's fault: `ipsec down <conn>`), then wait until that
    gateway shows no established SA. With `fault`, a running drill records the moment as `fault_injected`."""
    ike, child = names(inv, site, connection)
    known = known_connections(inv, site)
    if known and ike not in known:
        # `ipsec down <typo>` exits 0 and does nothing: the drill would believe a fault that never happened
        raise StepFailed(f"{inv.gateway(site).host}: no connection {ike!r} loaded (known: "
                         f"{', '.join(sorted(known))}): fix `connection` in the inventory or experiment")
    if known and child not in known[ike]:
        raise StepFailed(f"{inv.gateway(site).host}: connection {ike!r} has no child {child!r} (its children: "
                         f"{', '.join(known[ike]) or 'none'}): fix `child` in the inventory")
    step = tunnel_command(inv, site, "down", connection)
    if fault:
        recorder.fault_injected(site=site, connection=ike)
    states = wait_state(inv, [site], "down", verify_timeout, connection)
    if states[site] == "up":
        raise StepFailed(f"{step['host']}: `{step['command']}` left the tunnel up: check the connection name in "
                         f"the inventory (`{_STATUS_COMMAND[step['control']]}` lists them)")
    return {"step": step, "state": states[site]}


def bring_up(inv: Inventory, site: str, connection: str | None = None, *, timeout: float = 30,
             expect: str = "up") -> dict[str, Any]:
    """Initiate `site`'s connection on its gateway only (`ipsec up <conn>`), then check the tunnel. `expect="up"`:
    it must come up within `timeout`; `"down"`: it must not (the one-sided recovery's symptom); `"any"`: report
    only."""
    if expect not in ("up", "down", "any"):
        raise StepFailed("tunnel_up: expect must be 'up', 'down' or 'any'")
    step = tunnel_command(inv, site, "up", connection, timeout=max(timeout, 120))
    states = wait_state(inv, [site], "up", timeout if expect == "up" else 0.5, connection)
    ok = states[site] == "up"
    said = "; ".join(step["said"]["messages"][-3:])
    if expect == "up" and not ok:
        raise StepFailed(f"{step['host']}: tunnel not up {timeout:g}s after `{step['command']}` "
                         f"(state {states[site]}; strongSwan said: {said})")
    if expect == "down" and ok:
        raise StepFailed(f"{step['host']}: the one-sided `{step['command']}` established the tunnel: the expected "
                         f"failure was not reproduced (strongSwan said: {said})")
    return {"step": step, "state": states[site], "established": ok}


def recover(inv: Inventory, connection: str | None = None, *, timeout: float = 60,
            settle_seconds: float = 5) -> dict[str, Any]:
    """Bring the tunnel back in the seed's proven order and wait until both gateways show it established.

    Order: down on the fault site (AWS in the seed), down then up on the peer (on-prem), then up on the fault site
    — each with its gateway's own tool and connection names. An attempt succeeds when both gateways show the IKE_SA
    ESTABLISHED and the CHILD_SA INSTALLED with the right selectors within `settle_seconds`; otherwise the order is
    replayed with backoff (1, 2, 4 … s) until `timeout`. Nothing is done when the tunnel is already up. Raises
    StepFailed past the timeout."""
    fault_site, peer_site = inv.drill.fault_site, inv.drill.peer_site
    sites = [fault_site, peer_site]
    started = time.monotonic()
    initial = {s: tunnel_state(inv, s, connection) for s in sites}
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
            attempt["steps"].append(tunnel_command(inv, site, verb, connection, timeout=max(2.0, left)))
        remaining = timeout - (time.monotonic() - started)
        states = wait_state(inv, sites, "up", max(0.0, min(settle_seconds, remaining)), connection)
        attempt["states"] = states
        attempt["established"] = all(v == "up" for v in states.values())
        attempts.append(attempt)
        if attempt["established"]:
            recorder.tunnel_restored(already_up=False, attempts=len(attempts))
            return {"already_up": False, "attempts": attempts, "states": states,
                    "seconds": round(time.monotonic() - started, 3)}
        if time.monotonic() - started + backoff >= timeout:
            tools = ", ".join(f"`sudo {_STATUS_COMMAND[control_of(inv, s)]}` on {inv.gateway(s).host}" for s in sites)
            raise StepFailed(
                f"tunnel {names(inv, fault_site, connection)[0]} not back on both gateways after {len(attempts)} "
                f"attempt(s) in {timeout:g}s (states {states}); check {tools} and run `drpoc recover` once the "
                f"cause is fixed")
        logger.warning("tunnel not back after attempt %d (%s); retrying in %.0fs", len(attempts), states, backoff)
        time.sleep(backoff)
        backoff = min(backoff * 2, 8)
