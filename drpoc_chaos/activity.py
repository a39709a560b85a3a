"""What every probe and action shares: the inventory of this run, pooled connections, and one way to fail.

Expected failures (a host that cannot be reached, a refused login, sudo that wants a password, output that does not
parse, a MySQL error, a bad inventory) become `ActivityFailed` with the sentence that names the host, the command and
what to do — never a traceback. Secrets are never part of a message: remote.py and db.py keep them out.
"""
from __future__ import annotations

import functools
import logging
import threading
from typing import Any, Callable, Mapping, TypeVar

from chaoslib.exceptions import ActivityFailed, InterruptExecution

from . import db, remote
from .inventory import Inventory, InventoryError, MysqlEndpoint, load_inventory

logger = logging.getLogger("chaostoolkit")
F = TypeVar("F", bound=Callable[..., Any])

# Connections reused across the activities of a run (one per host / endpoint), per thread: chaoslib runs background
# activities in worker threads, and a PyMySQL connection must not be shared between threads.
_local = threading.local()


def db_pool() -> db.DbPool:
    pool = getattr(_local, "db_pool", None)
    if pool is None:
        pool = _local.db_pool = db.DbPool()
        _all_db_pools.append(pool)
    return pool


_all_db_pools: list[db.DbPool] = []


def close_all() -> None:
    """Close every pooled SSH and MySQL connection (end of a run)."""
    for pool in list(_all_db_pools):
        pool.close_all()
    remote.POOL.close_all()


def inventory(configuration: Mapping | None) -> Inventory:
    return load_inventory(configuration=dict(configuration or {}))


def gateway_host(inv: Inventory, site: str):
    return inv.host(inv.gateway(site).host)


def connection_name(inv: Inventory, site: str, connection: str | None) -> str:
    return connection or inv.gateway(site).connection


def sql(endpoint: MysqlEndpoint, inv: Inventory, statement: str, args=None, secrets: Mapping | None = None,
        pool: db.DbPool | None = None) -> list[dict]:
    return db.execute(endpoint, inv, statement, args, secrets=secrets, pool=pool or db_pool())


def activity(func: F) -> F:
    """Turn the expected failures of an activity into ActivityFailed with an actionable sentence."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (ActivityFailed, InterruptExecution):
            raise
        except (remote.RemoteError, db.DbError, InventoryError) as exc:
            raise ActivityFailed(str(exc)) from None
        except ValueError as exc:  # the parsers' errors (VpnStatusParseError, ReplicaStatusParseError) and bad args
            raise ActivityFailed(f"{func.__name__}: {exc}") from None

    return wrapper  # type: ignore[return-value]
