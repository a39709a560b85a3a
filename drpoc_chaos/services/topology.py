"""Who may write in the pair: read each server's read_only (and super_read_only on MySQL), and tell whether exactly one
takes writes. A VPN outage must never make the replica writable — two writers is split brain, a failure in every
drill (the failover drill moves the writer on purpose, and checks the same rule at every step)."""
from __future__ import annotations

from typing import Any, Mapping

from ..inventory import Inventory, MysqlEndpoint
from .context import sql
from .replica import dialect_of


def writable(endpoint: MysqlEndpoint, inv: Inventory, secrets: Mapping | None = None, pool=None) -> bool:
    """True when the server takes writes from ordinary users (read_only = 0, and super_read_only = 0 on MySQL)."""
    row = sql(endpoint, inv, dialect_of(endpoint, inv, secrets, pool).writable, secrets=secrets, pool=pool)[0]
    return int(row["ro"]) == 0 and int(row["sro"]) == 0


def writers(inv: Inventory, secrets: Mapping | None = None, pool=None) -> dict[str, Any]:
    """{"source": bool, "replica": bool, "writers": n, "single": n == 1} for the inventory's pair."""
    out: dict[str, Any] = {role: writable(ep, inv, secrets, pool)
                           for role, ep in (("source", inv.source), ("replica", inv.replica))}
    out["writers"] = sum(1 for role in ("source", "replica") if out[role])
    out["single"] = out["writers"] == 1
    return out
