"""The lab's topology as data: hosts, links, addresses, routes, published ports, paths and replica knobs.

Pure data and small pure helpers only: nothing here touches the machine. The addresses are the seed runbook's
(AWS VPC 10.20.0.0/16 with the source at 10.20.11.123, on-prem 192.168.64.0/24 with the replica at 192.168.64.15);
the WAN between the gateways uses documentation ranges so no lab address can ever be a real one.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

# Persistent state (data directories, keys, secrets, the inventory) and runtime state (namespace files, pids).
STATE_DIR = Path(os.environ.get("DRPOC_LAB_STATE_DIR", "/var/lib/drpoc-lab"))
RUN_DIR = Path(os.environ.get("DRPOC_LAB_RUN_DIR", "/run/drpoc-lab"))
INVENTORY_PATH = STATE_DIR / "inventory.yaml"

CONNECTION = "onprem-aws"
# In swanctl mode the CHILD_SA is named apart from the IKE connection, as swanctl.conf allows: every code path that
# must pass the child (`swanctl --initiate --child`) is exercised by the lab itself.
SWANCTL_CHILD = "onprem-aws-net"
IPSEC_MODES = ("ipsec", "swanctl")
HELPER_DIR = "/usr/local/sbin"  # where the lab installs the gateway helper inside each gateway
AWS_SUBNET = "10.20.0.0/16"
ONPREM_SUBNET = "192.168.64.0/24"
SOURCE_IP = "10.20.11.123"
REPLICA_IP = "192.168.64.15"
AWS_WAN_IP = "198.51.100.1"
ONPREM_WAN_IP = "203.0.113.1"

# The lab's two login users: `drpoc` has passwordless sudo (how real gateways are usually reached), `drpoc-nosudo`
# has sudo that asks for a password (so `sudo -n` fails: the error path a real misconfigured host shows).
LOGIN_USER = "drpoc"
NOSUDO_USER = "drpoc-nosudo"
LOGIN_UID = 4242
NOSUDO_UID = 4243
DB_USER = "drpoc"
REPL_USER = "repl"


@dataclass(frozen=True)
class Host:
    name: str
    role: str  # "gateway" | "database" | "router"
    site: str | None
    ssh_port: int | None = None  # published on 127.0.0.1
    mysql_port: int | None = None  # published on 127.0.0.1
    routes: tuple[str, ...] = ()  # `ip route add` argument strings
    forward: bool = False

    @property
    def has_mount_ns(self) -> bool:
        # The WAN router runs no daemon: a network namespace is enough.
        return self.role != "router"


@dataclass(frozen=True)
class Link:
    """A veth pair created straight into two namespaces."""

    a_host: str
    a_dev: str
    a_addr: str
    b_host: str
    b_dev: str
    b_addr: str


@dataclass(frozen=True)
class ReplicaKnobs:
    """Replica timing. MySQL/MariaDB defaults are 60 / 30 / 60 s: an outage is then noticed only after 60 s, the
    `(110 "Connection timed out")` error shows after 120 s, and a row can take ~55 s to arrive after the tunnel is
    back. The lab defaults make a drill take seconds; override them to rehearse production settings."""

    net_timeout: int = 4  # slave_net_timeout / replica_net_timeout
    heartbeat_period: float = 1.0  # MASTER_HEARTBEAT_PERIOD
    connect_retry: int = 1  # MASTER_CONNECT_RETRY

    def validate(self) -> None:
        if self.net_timeout < 1:
            raise ValueError("net timeout must be at least 1 second")
        if not 0 < self.heartbeat_period <= self.net_timeout:
            raise ValueError("heartbeat period must be > 0 and not above the net timeout")
        if self.connect_retry < 1:
            raise ValueError("connect retry must be at least 1 second")


MYSQL_DEFAULT_KNOBS = ReplicaKnobs(net_timeout=60, heartbeat_period=30, connect_retry=60)


# (what, fix) for each port setting that could not be used; `lab up` reports them before touching anything (they are
# read at import, where raising would turn a typo into a traceback in every command)
PORT_SETTING_PROBLEMS: list[tuple[str, str]] = []
MAX_SITES = 16  # spokes of the largest fleet lab (`drpoc lab up --sites N`)
# the most ports counted up from a base: 2 SSH ports (gateway, database) for the hub and for each of MAX_SITES spokes
_PORTS_PER_BASE = 2 * (MAX_SITES + 1)


def _port(env: str, default: int) -> int:
    raw = os.environ.get(env)
    if raw is None:
        return default
    value = raw.strip()
    if value.isdigit() and 1024 <= int(value) <= 65535 - _PORTS_PER_BASE:
        return int(value)
    PORT_SETTING_PROBLEMS.append((
        f"{env}={raw[:20]!r} is not a usable port base",
        f"set it to a number from 1024 to {65535 - _PORTS_PER_BASE} (the lab counts up from it), or unset it for "
        f"the default {default}"))
    return default


# Below the kernel's ephemeral range (32768-60999 by default): a published port there can be held at random by any
# outgoing connection that was given it as its local port, and the lab could not start (CI saw it happen).
SSH_PORT_BASE = _port("DRPOC_LAB_SSH_PORT_BASE", 2201)
MYSQL_PORT_BASE = _port("DRPOC_LAB_MYSQL_PORT_BASE", 13306)

# A fleet lab (`drpoc lab up --sites N`): the AWS hub and N on-prem spokes. Spoke 1 is the seed's on-prem site
# (its names and addresses); spoke k (k >= 2) is `onprem<k>`, LAN 192.168.(63+k).0/24, replica at .15, WAN address
# in its own /30 of 198.18.0.0/24: RFC 2544's range for benchmark networks, never routed on the Internet. Not
# TEST-NET-1 (192.0.2.0/24): machines that run labs and CI give it to their own interface, and a lab address equal
# to the machine's own is harmless in its namespace but misleading to anyone reading addresses.
SPOKE_WAN_PREFIX = "198.18.0"


def spoke_site(k: int) -> str:
    return "onprem" if k == 1 else f"onprem{k}"


def spoke_connection(k: int) -> str:
    return CONNECTION if k == 1 else f"{spoke_site(k)}-aws"


def spoke_child(k: int, mode: str) -> str:
    """The CHILD_SA's name: the connection's in ipsec mode; named apart in swanctl mode (spoke 1: SWANCTL_CHILD)."""
    return spoke_connection(k) + ("-net" if mode == "swanctl" else "")


def spoke_subnet(k: int) -> str:
    return f"192.168.{63 + k}.0/24"


def _spoke_lan(k: int, host: int) -> str:
    return f"192.168.{63 + k}.{host}"


def _spoke_wan(k: int) -> tuple[str, str]:
    """(gateway address, router address) of spoke k's WAN link, /24 for spoke 1 (the seed's), /30 after."""
    if k == 1:
        return ONPREM_WAN_IP, "203.0.113.254"
    base = 4 * (k - 2)
    return f"{SPOKE_WAN_PREFIX}.{base + 1}", f"{SPOKE_WAN_PREFIX}.{base + 2}"


class TunnelSpec(TypedDict):
    spoke: int  # the on-prem site k the tunnel joins to the hub (names its connection and child)
    connection: str
    peer_ip: str
    local: str
    remote: str
    auto: str


class GatewaySpec(TypedDict):
    host: str
    wan_ip: str
    peer_ip: str  # the first tunnel's peer (a spoke has one tunnel; the hub one per spoke)
    local: str
    remote: str
    auto: str
    tunnels: list[TunnelSpec]


class DatabaseSpec(TypedDict):
    host: str
    role: str
    server_id: int
    ip: str


@dataclass(frozen=True)
class Topology:
    """The lab's hosts, links, gateways (by site) and databases (by site) for `spokes` on-prem sites."""

    spokes: int
    hosts: tuple[Host, ...]
    links: tuple[Link, ...]
    gateways: dict[str, GatewaySpec]
    databases: dict[str, DatabaseSpec]

    @property
    def hosts_by_name(self) -> dict[str, Host]:
        return {h.name: h for h in self.hosts}

    @property
    def host_names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.hosts)

    @property
    def spoke_sites(self) -> tuple[str, ...]:
        return tuple(spoke_site(k) for k in range(1, self.spokes + 1))

    @property
    def database_hosts(self) -> tuple[str, ...]:
        return tuple(d["host"] for d in self.databases.values())

    def published_ports(self) -> list[tuple[int, str, int]]:
        """(port on 127.0.0.1, lab host, port inside the host) for every published service."""
        out = []
        for h in self.hosts:
            if h.ssh_port:
                out.append((h.ssh_port, h.name, 22))
            if h.mysql_port:
                out.append((h.mysql_port, h.name, 3306))
        return out


def build_topology(spokes: int = 1) -> Topology:
    """The lab for `spokes` on-prem sites (1 = the seed's two-site lab, exactly as before)."""
    if not 1 <= spokes <= MAX_SITES:
        raise ValueError(f"--sites must be 1 to {MAX_SITES}, got {spokes}")
    spoke_ks = range(1, spokes + 1)
    hosts: list[Host] = [
        Host("wan", "router", None,
             routes=("blackhole 10.0.0.0/8", "blackhole 172.16.0.0/12", "blackhole 192.168.0.0/16"), forward=True),
        # without its tunnel a spoke's LAN must be unreachable, not routed to the WAN: one blackhole per spoke
        Host("aws-vpn", "gateway", "aws", ssh_port=SSH_PORT_BASE,
             routes=("default via 198.51.100.254", *(f"blackhole {spoke_subnet(k)}" for k in spoke_ks)),
             forward=True),
        Host("aws-db", "database", "aws", ssh_port=SSH_PORT_BASE + 1, mysql_port=MYSQL_PORT_BASE,
             routes=("default via 10.20.11.10",)),
    ]
    links: list[Link] = [Link("aws-vpn", "wan0", f"{AWS_WAN_IP}/24", "wan", "aws0", "198.51.100.254/24"),
                         Link("aws-vpn", "lan0", "10.20.11.10/24", "aws-db", "eth0", f"{SOURCE_IP}/24")]
    gateways: dict[str, GatewaySpec] = {}
    databases: dict[str, DatabaseSpec] = {"aws": {"host": "aws-db", "role": "source", "server_id": 1,
                                                  "ip": SOURCE_IP}}
    hub_tunnels: list[TunnelSpec] = []
    for k in spoke_ks:
        site = spoke_site(k)
        wan_ip, router_ip = _spoke_wan(k)
        prefix = 24 if k == 1 else 30
        # ports: spoke k's gateway and database follow the seed's four (2201-2204, 13306-13307)
        hosts += [Host(f"{site}-vpn", "gateway", site, ssh_port=SSH_PORT_BASE + 2 * k,
                       routes=(f"default via {router_ip}", f"blackhole {AWS_SUBNET}"), forward=True),
                  Host(f"{site}-db", "database", site, ssh_port=SSH_PORT_BASE + 2 * k + 1,
                       mysql_port=MYSQL_PORT_BASE + k, routes=(f"default via {_spoke_lan(k, 1)}",))]
        links += [Link(f"{site}-vpn", "wan0", f"{wan_ip}/{prefix}", "wan", f"{site}0", f"{router_ip}/{prefix}"),
                  Link(f"{site}-vpn", "lan0", f"{_spoke_lan(k, 1)}/24", f"{site}-db", "eth0",
                       f"{_spoke_lan(k, 15)}/24")]
        # On-prem initiates; AWS only answers. Two initiators race and one gets NO_PROPOSAL_CHOSEN (docs/LAB.md).
        spoke_tunnel: TunnelSpec = {"spoke": k, "connection": spoke_connection(k), "peer_ip": AWS_WAN_IP,
                                    "local": spoke_subnet(k), "remote": AWS_SUBNET, "auto": "start"}
        gateways[site] = {"host": f"{site}-vpn", "wan_ip": wan_ip, "peer_ip": AWS_WAN_IP, "local": spoke_subnet(k),
                          "remote": AWS_SUBNET, "auto": "start", "tunnels": [spoke_tunnel]}
        hub_tunnels.append({"spoke": k, "connection": spoke_connection(k), "peer_ip": wan_ip, "local": AWS_SUBNET,
                            "remote": spoke_subnet(k), "auto": "add"})
        databases[site] = {"host": f"{site}-db", "role": "replica", "server_id": k + 1, "ip": _spoke_lan(k, 15)}
    first = hub_tunnels[0]
    gateways = {"aws": {"host": "aws-vpn", "wan_ip": AWS_WAN_IP, "peer_ip": first["peer_ip"], "local": AWS_SUBNET,
                        "remote": first["remote"], "auto": "add", "tunnels": hub_tunnels}, **gateways}
    return Topology(spokes=spokes, hosts=tuple(hosts), links=tuple(links), gateways=gateways, databases=databases)


def lab_host_name(name: str) -> bool:
    """A name the lab gives its namespaces (wan, aws-*, onprem[k]-*): what `lab down` may remove when lab.json is
    gone."""
    return name == "wan" or name in ("aws-vpn", "aws-db") or \
        any(name == f"{spoke_site(k)}-{kind}" for k in range(1, MAX_SITES + 1) for kind in ("vpn", "db"))


# The seed's two-site lab (one spoke): what the module-level names below describe.
TWO_SITES = build_topology(1)
HOSTS: tuple[Host, ...] = TWO_SITES.hosts
HOSTS_BY_NAME = TWO_SITES.hosts_by_name
LAB_HOST_NAMES = TWO_SITES.host_names
LINKS: tuple[Link, ...] = TWO_SITES.links
GATEWAYS: dict[str, GatewaySpec] = TWO_SITES.gateways
DATABASES: dict[str, DatabaseSpec] = TWO_SITES.databases


@dataclass(frozen=True)
class Paths:
    state: Path = STATE_DIR
    run: Path = RUN_DIR

    @property
    def ns_dir(self) -> Path:
        return self.run / "ns"

    @property
    def pids(self) -> Path:
        return self.run / "pids"

    @property
    def secrets(self) -> Path:
        return self.state / "secrets"

    @property
    def ssh(self) -> Path:
        return self.state / "ssh"

    @property
    def client_key(self) -> Path:
        return self.ssh / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.ssh / "known_hosts"

    @property
    def inventory(self) -> Path:
        return self.state / "inventory.yaml"

    @property
    def lab_json(self) -> Path:
        return self.run / "lab.json"

    @property
    def shared_etc(self) -> Path:
        return self.run / "etc"

    def host_dir(self, host: str) -> Path:
        return self.state / "hosts" / host

    def host_etc(self, host: str) -> Path:
        # on disk, not under /run: each host mounts a fresh /run over its own, and sshd reads its config after
        return self.host_dir(host) / "etc"

    def datadir(self, host: str) -> Path:
        return self.host_dir(host) / "mysql"

    def host_sbin(self, host: str) -> Path:
        # bind-mounted over /usr/local/sbin inside a gateway: the gateway helper, root-owned
        return self.host_dir(host) / "sbin"

    def mnt_ns(self, host: str) -> Path:
        return self.ns_dir / f"{host}.mnt"

    def uts_ns(self, host: str) -> Path:
        return self.ns_dir / f"{host}.uts"


@dataclass
class LabSettings:
    knobs: ReplicaKnobs = field(default_factory=ReplicaKnobs)
    esp_mode: str = "auto"  # auto | kernel | libipsec
    ipsec: str = "ipsec"  # ipsec (starter + ipsec.conf, the seed's commands) | swanctl (charon + swanctl.conf, vici)
    sites: int = 1  # on-prem spokes around the AWS hub (1: the seed's two-site lab)

    def child(self) -> str:
        return SWANCTL_CHILD if self.ipsec == "swanctl" else CONNECTION


def enter_command(host: str, paths: Paths = Paths()) -> list[str]:
    """The nsenter prefix that puts a command on a lab host: its network, mount and UTS namespaces."""
    cmd = ["nsenter", f"--net=/run/netns/{host}"]
    if host != "wan":  # the WAN router runs no daemon: a network namespace only
        cmd += [f"--mount={paths.mnt_ns(host)}", f"--uts={paths.uts_ns(host)}", "--wd=/"]
    return cmd + ["--"]


def published_ports() -> list[tuple[int, str, int]]:
    """The two-site lab's published ports (a fleet lab's: `Topology.published_ports`)."""
    return TWO_SITES.published_ports()
