"""What every service call shares in one process: the inventory of the run and pooled connections.

Connections are reused across the activities of a run (one per host / endpoint), per thread: chaoslib runs
background activities in worker threads, and a PyMySQL connection must not be shared between threads."""
from __future__ import annotations

import threading
from typing import Mapping

from .. import db, remote
from ..inventory import Fleet, Inventory, MysqlEndpoint, SshHost, load_fleet, load_inventory

_local = threading.local()
_all_db_pools: list[db.DbPool] = []


def db_pool() -> db.DbPool:
    pool = getattr(_local, "db_pool", None)
    if pool is None:
        pool = _local.db_pool = db.DbPool()
        _all_db_pools.append(pool)
    return pool


def close_all() -> None:
    """Close every pooled SSH and MySQL connection (end of a run)."""
    for pool in list(_all_db_pools):
        pool.close_all()
    remote.POOL.close_all()


def inventory(configuration: Mapping | None) -> Inventory:
    return load_inventory(configuration=dict(configuration or {}))


def fleet(configuration: Mapping | None) -> Fleet:
    """Every pair of the run's inventory (a version 1 inventory is a fleet of one pair)."""
    return load_fleet(configuration=dict(configuration or {}))


def gateway_host(inv: Inventory, site: str) -> SshHost:
    return inv.host(inv.gateway(site).host)


def connection_name(inv: Inventory, site: str, connection: str | None) -> str:
    return connection or inv.gateway(site).connection


def sql(endpoint: MysqlEndpoint, inv: Inventory, statement: str, args=None, secrets: Mapping | None = None,
        pool: db.DbPool | None = None) -> list[dict]:
    return db.execute(endpoint, inv, statement, args, secrets=secrets, pool=pool or db_pool())
