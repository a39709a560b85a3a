"""The inventory `lab up` writes: the lab's two sites in the format of docs/INVENTORY.md, so drills, probes and
`chaos run` reach the lab exactly as they reach real sites (SSH and MySQL on the 127.0.0.1 ports the publisher
listens on). Secrets appear as file references, never as values. Written atomically (temp file, then rename).
"""
from __future__ import annotations

import yaml

from .topology import CONNECTION, DATABASES, GATEWAYS, HOSTS, HOSTS_BY_NAME, LOGIN_USER, SWANCTL_CHILD, Paths


def write_inventory(p: Paths, mode: str = "ipsec") -> None:
    """`mode` is the lab's control (ipsec or swanctl): the inventory says it, and names the child in swanctl mode."""
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
    header = ("# Written by `drpoc lab up`: the lab's two sites in the inventory format of docs/INVENTORY.md.\n"
              "# Secrets are references (files readable by root only), never values.\n")
    tmp = p.inventory.with_suffix(".tmp")
    tmp.write_text(header + yaml.safe_dump(inv, sort_keys=False))
    tmp.replace(p.inventory)
