"""The inventory `lab up` writes: the lab's two sites in the format of docs/INVENTORY.md, so drills, probes and
`chaos run` reach the lab exactly as they reach real sites (SSH and MySQL on the 127.0.0.1 ports the publisher
listens on). Secrets appear as file references, never as values. Written atomically (temp file, then rename).
"""
from __future__ import annotations

import yaml

from .topology import (
    CONNECTION,
    DATABASES,
    GATEWAYS,
    HOSTS,
    HOSTS_BY_NAME,
    LOGIN_USER,
    SWANCTL_CHILD,
    TWO_SITES,
    Paths,
    Topology,
    spoke_child,
    spoke_connection,
    spoke_site,
)


def write_inventory(p: Paths, mode: str = "ipsec", topo: Topology = TWO_SITES) -> None:
    """`mode` is the lab's control (ipsec or swanctl): the inventory says it, and names the child in swanctl mode.
    The seed's two-site lab gets a version 1 inventory; a fleet lab (`--sites N`, N > 1) a version 2 one."""
    if topo.spokes > 1:
        _write(p, fleet_inventory(p, mode, topo), "the lab's hub and its on-prem sites")
        return
    hosts = {h.name: {"address": "127.0.0.1", "port": h.ssh_port} for h in HOSTS if h.ssh_port}
    sites = {}
    for site in ("aws", "onprem"):
        g, db = GATEWAYS[site], DATABASES[site]
        sites[site] = {
            "gateway": {"host": g["host"], "connection": CONNECTION,
                        **({"child": SWANCTL_CHILD} if mode == "swanctl" else {}), "control": mode,
                        "local_subnet": g["local"], "remote_subnet": g["remote"]},
            "database": {"role": db["role"], "host": db["host"],
                         "mysql": {"address": "127.0.0.1", "port": HOSTS_BY_NAME[db["host"]].mysql_port,
                                   # how the other site reaches it through the tunnel (a failover re-points to it)
                                   "replication_address": db["ip"], "replication_port": 3306}},
        }
    inv = {
        "version": 1,
        "name": "lab",
        "ssh_defaults": {"user": LOGIN_USER, "sudo": True, "key_file": str(p.client_key),
                         "known_hosts": str(p.known_hosts), "connect_timeout": 5, "command_timeout": 30},
        "hosts": hosts,
        "mysql_defaults": {"user": "drpoc", "password": {"file": str(p.secrets / "mysql_password")},
                           "database": "testdb", "connect_timeout": 5},
        "replication": {"user": "repl", "password": {"file": str(p.secrets / "repl_password")}},
        "sites": sites,
        "drill": {"connection": CONNECTION, "fault_site": "aws", "peer_site": "onprem"},
    }
    _write(p, inv, "the lab's two sites")


def _common(p: Paths) -> dict:
    return {
        "ssh_defaults": {"user": LOGIN_USER, "sudo": True, "key_file": str(p.client_key),
                         "known_hosts": str(p.known_hosts), "connect_timeout": 5, "command_timeout": 30},
        "mysql_defaults": {"user": "drpoc", "password": {"file": str(p.secrets / "mysql_password")},
                           "database": "testdb", "connect_timeout": 5},
        "replication": {"user": "repl", "password": {"file": str(p.secrets / "repl_password")}},
    }


def fleet_inventory(p: Paths, mode: str, topo: Topology) -> dict:
    """The fleet lab as a version 2 inventory: the hub `aws` and one pair per spoke, named after the spoke.

    Each pair's fault side is its spoke's gateway: a drill then takes the drill lock of the spoke's gateway, not the
    hub's, so drills of different spokes can run at once (a campaign's parallelism), and taking the tunnel down
    from the spoke's end is the same outage for the pair while the hub's other connections stay untouched."""
    common = _common(p)
    hosts_by_name = topo.hosts_by_name
    sites = {}
    for site, g in topo.gateways.items():
        db = topo.databases[site]
        sites[site] = {
            "gateway": {"host": g["host"], "control": mode},
            "database": {"host": db["host"],
                         "mysql": {"address": "127.0.0.1", "port": hosts_by_name[db["host"]].mysql_port,
                                   "replication_address": db["ip"], "replication_port": 3306}},
        }
    hub = topo.gateways["aws"]
    pairs = {}
    for k in range(1, topo.spokes + 1):
        site, conn = spoke_site(k), spoke_connection(k)
        spoke = topo.gateways[site]
        child = {"child": spoke_child(k, mode)} if mode == "swanctl" else {}
        pairs[site] = {
            "source": "aws", "replica": site,
            "tunnel": {"aws": {"connection": conn, **child, "local_subnet": hub["local"],
                               "remote_subnet": spoke["local"]},
                       site: {"connection": conn, **child, "local_subnet": spoke["local"],
                              "remote_subnet": spoke["remote"]}},
            "drill": {"connection": conn, "fault_site": site, "peer_site": "aws"},
        }
    return {"version": 2, "name": "lab",
            "ssh_defaults": common["ssh_defaults"],
            "hosts": {h.name: {"address": "127.0.0.1", "port": h.ssh_port} for h in topo.hosts if h.ssh_port},
            "mysql_defaults": common["mysql_defaults"], "replication": common["replication"],
            "sites": sites, "pairs": pairs}


def _write(p: Paths, inv: dict, what: str) -> None:
    header = (f"# Written by `drpoc lab up`: {what} in the inventory format of docs/INVENTORY.md.\n"
              "# Secrets are references (files readable by root only), never values.\n")
    tmp = p.inventory.with_suffix(".tmp")
    tmp.write_text(header + yaml.safe_dump(inv, sort_keys=False))
    tmp.replace(p.inventory)
