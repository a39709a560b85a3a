"""The one restore sequence, used by the drill control after every run that injected a fault and by `drpoc recover`:
the tunnel in the seed's order, then the replica's IO thread, restarting the replica (STOP/START REPLICA) when it
does not reconnect by itself — the seed's fix for a replica stuck in `Connecting`."""
from __future__ import annotations

from typing import Any, Callable, Mapping

from ..db import DbError
from ..inventory import Inventory
from ..remote import RemoteError
from . import gateway, replica
from .errors import StepFailed

_EXPECTED = (StepFailed, RemoteError, DbError)


def restore(inv: Inventory, *, tunnel_timeout: float, replica_timeout: float = 30, secrets: Mapping | None = None,
            say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Returns {"ok", "tunnel", "replica", "forced", "notes"}: "forced" is True when the tunnel had to be brought
    back (it was not up); every problem is in "notes" with what to do. Never raises for an expected failure."""
    out: dict[str, Any] = {"ok": True, "forced": False, "notes": []}
    try:
        r = gateway.recover(inv, timeout=tunnel_timeout)
        out["tunnel"] = "already up" if r["already_up"] else f"recovered ({len(r['attempts'])} attempt(s))"
        out["forced"] = not r["already_up"]
    except _EXPECTED as exc:
        out.update(ok=False, tunnel=f"FAILED: {exc}")
        out["notes"].append(f"the tunnel could not be restored: {exc} — run `drpoc recover`")
        say(f"tunnel {inv.drill.connection}: NOT recovered: {exc}")
        return out
    say(f"tunnel {inv.drill.connection}: {out['tunnel']}")
    try:
        replica.wait_for_io(inv, "Yes", timeout=replica_timeout, secrets=secrets)
        out["replica"] = "running"
    except _EXPECTED:
        say("replica still not connected: STOP REPLICA; START REPLICA")
        try:
            replica.restart(inv, secrets)
            replica.wait_for_io(inv, "Yes", timeout=replica_timeout, secrets=secrets)
            out["replica"] = "restarted"
            out["notes"].append("the replica had to be restarted (STOP/START REPLICA) after the tunnel came back")
        except _EXPECTED as exc:
            out.update(ok=False, replica=f"FAILED: {exc}")
            out["notes"].append(f"the replica did not reconnect: {exc}")
    if out["ok"]:
        # connected is not applying: a SQL thread stopped on an error needs a DBA, not another restart
        st = replica.read_status(inv, secrets)
        if not replica.threads_running(st):
            sql_state = st.sql_running if st else None
            error = (st.last_sql_error or "no error recorded")[:200] if st else "replication not configured"
            out.update(ok=False, replica=f"FAILED: IO thread connected but SQL thread {sql_state!r} ({error})")
            out["notes"].append(f"the replica's SQL thread is not running on {inv.replica.host}: {error} — check "
                                f"SHOW REPLICA STATUS there")
    say(f"replica on {inv.replica.host}: {out['replica']}")
    return out
