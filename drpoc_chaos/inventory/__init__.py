"""The inventory: which hosts, gateways and databases a drill acts on (docs/INVENTORY.md, versions 1 and 2).

`load_inventory()` finds the YAML file, checks every rule of docs/INVENTORY.md and returns a frozen `Inventory`: one
replication pair's view of the file (a version 1 file is one pair; a version 2 "fleet" holds several, chosen with
the `pair` argument or configuration key). `load_fleet()` returns the whole file as a `Fleet` of pair views.
Errors are `InventoryError`s that name the file, the key path (`sites.aws.gateway.host`), the line when known, and
the fix.

The inventory holds **no secret values**: a password is a reference (`{env: NAME}`, `{file: PATH}` or
`{secret: NAME}`) that `resolve_secret()` turns into the value at the moment a connection is opened. Values are
never stored on these objects, never put in a message and never logged.

One concern per module; imports only go downward (loader → checks → secrets → models):

    models.py   the frozen objects (Fleet, FleetSite, Inventory, SshHost, Gateway, MysqlEndpoint, Site, DrillTarget)
                and InventoryError
    secrets.py  password references ({env|file|secret: NAME}) and resolve_secret()
    checks.py   every rule of docs/INVENTORY.md: parsed YAML data → an Inventory or a Fleet, errors with key path, line
    loader.py   where the file is, reading it, YAML (duplicate keys, alias-bomb bound, line numbers), the cache

Import from here (`from drpoc_chaos.inventory import load_inventory`), not from the modules. The constants live in
the module of their concern (`loader.DEFAULT_LAB_INVENTORY`, `loader.MAX_EXPANDED_NODES`, `checks.FORMAT_VERSIONS`,
`secrets.SECRET_KINDS`); `DEFAULT_LAB_INVENTORY` is re-exported here, but to change the default path patch it on
`loader`, where `load_inventory()` reads it.
"""
from __future__ import annotations

from .loader import DEFAULT_LAB_INVENTORY, clear_cache, load_fleet, load_inventory, parse_fleet, parse_inventory
from .models import (
    DrillTarget,
    Fleet,
    FleetSite,
    Gateway,
    Heartbeat,
    Inventory,
    InventoryError,
    MysqlEndpoint,
    MysqlTls,
    Site,
    SshHost,
)
from .secrets import resolve_secret

__all__ = [
    "DEFAULT_LAB_INVENTORY",
    "DrillTarget",
    "Fleet",
    "FleetSite",
    "Gateway",
    "Heartbeat",
    "Inventory",
    "InventoryError",
    "MysqlEndpoint",
    "MysqlTls",
    "Site",
    "SshHost",
    "clear_cache",
    "load_fleet",
    "load_inventory",
    "parse_fleet",
    "parse_inventory",
    "resolve_secret",
]
