"""The checked inventory as frozen objects, and `InventoryError` (docs/INVENTORY.md).

These objects hold password *references*, never the values (see secrets.py).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..core.identifiers import name_problem


class InventoryError(ValueError):
    """The inventory (or a secret reference in it) is missing or wrong.

    `str()` reads `<file>: <key path> (line N): <problem>; fix: <what to do>`. `.path`, `.key`, `.line`,
    `.problem` and `.fix` hold the parts. Secret values never appear in it.
    """

    def __init__(self, problem: str, *, path: str | os.PathLike | None = None, key: str | None = None,
                 fix: str | None = None, line: int | None = None):
        self.path = str(path) if path is not None else None
        self.key = key
        self.problem = problem
        self.fix = fix
        self.line = line
        where = []
        if self.path:
            where.append(self.path)
        if key:
            where.append(f"{key} (line {line})" if line else key)
        elif line:
            where.append(f"line {line}")
        text = ": ".join(where + [problem]) if where else problem
        if fix:
            text += f"; fix: {fix}"
        super().__init__(text)


@dataclass(frozen=True)
class SshHost:
    """One SSH endpoint. `jump` names another host of the inventory to go through, or is None; the loader also
    sets `jump_host` to that host's `SshHost` so remote.py needs nothing else to build the chain."""

    name: str
    address: str
    port: int
    user: str
    sudo: bool
    key_file: str | None
    known_hosts: str | None
    connect_timeout: float
    command_timeout: float
    jump: str | None = None
    jump_host: "SshHost | None" = field(default=None, repr=False, compare=False)
    # the keys the inventory set for this host (on it or in ssh_defaults): an ssh_config file never overrides them
    set_keys: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    def __str__(self) -> str:
        return f"{self.name} [{self.address}]:{self.port}"


CONTROLS = ("ipsec", "swanctl", "auto")
DEFAULT_HELPER_PATH = "/usr/local/sbin/drpoc-gw"


@dataclass(frozen=True)
class Gateway:
    """A site's VPN gateway: `host` names an entry of `Inventory.hosts`; `connection` is the IKE connection's name
    (the ipsec.conf `conn`, or the swanctl.conf `connections` entry) and `child` its CHILD_SA's (the same in
    ipsec.conf; may differ in swanctl.conf). `control` says which tool drives it: `ipsec` (stroke), `swanctl`
    (vici) or `auto` (asked on first contact); `helper` is where the drill's gateway helper is installed."""

    site: str
    host: str
    connection: str
    local_subnet: str
    remote_subnet: str
    child: str = ""
    control: str = "auto"
    helper: str = DEFAULT_HELPER_PATH

    def __post_init__(self) -> None:
        if not self.child:
            object.__setattr__(self, "child", self.connection)


@dataclass(frozen=True)
class MysqlTls:
    """TLS to MySQL (`ssl:` in the inventory): the server's certificate must be signed by `ca`; with
    `verify_identity` its name must also match the address connected to; `cert`/`key` are a client certificate."""

    ca: str
    cert: str | None = None
    key: str | None = None
    verify_identity: bool = True


@dataclass(frozen=True)
class MysqlEndpoint:
    """A site's database. `host` is the SSH host of the database machine (operator commands); `address`/`port`
    is where MySQL listens — reached directly, or through the SSH host named by `via` (direct-tcpip), in which case
    the address is as seen from that host. `password_ref` is a reference, never the value."""

    site: str
    role: str
    host: str
    address: str
    port: int
    user: str
    password_ref: dict | None  # None only with an option_file that holds the password
    database: str | None
    connect_timeout: float
    via: str | None = None
    read_timeout: float = 30.0
    write_timeout: float = 30.0
    # MySQL client habits: TLS, and an option file ([client] section, or `option_group`) for what the inventory
    # leaves out — the inventory's values win over the file's
    ssl: MysqlTls | None = None
    option_file: str | None = None
    option_group: str = "client"
    # where the other site's server reaches this one for replication (CHANGE MASTER's host/port): the drill's own
    # `address` is often a bastion or a published port; None = not given (no failover drill on this pair)
    replication_address: str | None = None
    replication_port: int = 3306

    def __str__(self) -> str:
        via = f" via {self.via}" if self.via else ""
        return f"{self.role} ({self.site}) {self.address}:{self.port}{via}"


@dataclass(frozen=True)
class Site:
    name: str
    gateway: Gateway
    database: MysqlEndpoint


@dataclass(frozen=True)
class DrillTarget:
    """`connection` is taken down at `fault_site`'s gateway; `peer_site` is the other side."""

    connection: str
    fault_site: str
    peer_site: str


HEARTBEAT_FORMATS = ("drpoc", "pt-heartbeat")


@dataclass(frozen=True)
class Heartbeat:
    """Where replication lag is measured: `table` (schema.table, pt-heartbeat's columns) on the source, read on the
    replica. `format` "drpoc": the drill writes a row and times its arrival; "pt-heartbeat": a `pt-heartbeat --update
    --utc` daemon on the source writes it, and the lag is the age of its newest row on the replica."""

    table: str = "drpoc.heartbeat"
    format: str = "drpoc"


@dataclass(frozen=True)
class Replication:
    """The replication account a failover drill re-points servers with (CHANGE MASTER's user and password):
    `password_ref` is a reference, never the value."""

    user: str
    password_ref: dict


@dataclass(frozen=True)
class Inventory:
    """A loaded, checked inventory. Treat the dicts as read-only: the same object is shared through the cache."""

    path: Path
    name: str
    hosts: dict[str, SshHost] = field(repr=False)
    sites: dict[str, Site]
    drill: DrillTarget
    heartbeat: Heartbeat = field(default_factory=Heartbeat)
    replication: Replication | None = None  # needed by the failover drill only
    # which replication pair of the file this is (version 2 files hold several; a version 1 file is one pair, named
    # after its replica's site), the file's format version, and the Prefect work pool whose workers run this pair's
    # drills (the fault site's `work_pool`, else the other site's; None = not set)
    pair: str = ""
    version: int = 1
    work_pool: str | None = None

    @property
    def source(self) -> MysqlEndpoint:
        return self._by_role("source")

    @property
    def replica(self) -> MysqlEndpoint:
        return self._by_role("replica")

    def _by_role(self, role: str) -> MysqlEndpoint:
        for site in self.sites.values():
            if site.database.role == role:
                return site.database
        raise InventoryError(f"no {role} database", path=self.path, key="sites")  # excluded by validation

    def resolve_site(self, word: str | None, default: str = "fault") -> str:
        """A probe's `site` argument → a site name. A site's own name, or a role word: `fault` / `peer` (the drill's
        fault side and the other side), `source` / `replica` (the sites of the two databases). None → `default`.
        Experiments use role words, so they run unchanged on inventories whatever their sites are called."""
        word = default if word is None else word
        roles = {"fault": self.drill.fault_site, "peer": self.drill.peer_site,
                 "source": self.source.site, "replica": self.replica.site}
        if word in roles:
            return roles[word]
        if isinstance(word, str) and word in self.sites:
            return word
        shown = repr(word) if isinstance(word, str) and len(word) <= 64 else "this value"
        raise InventoryError(
            f"no site {shown}", path=self.path, key="sites",
            fix=f"use a role ({', '.join(roles)}) or one of the sites: {', '.join(sorted(self.sites))}")

    def site(self, name: str) -> Site:
        """The site called `name`; unknown → InventoryError listing the known sites."""
        try:
            return self.sites[name]
        except KeyError:
            raise InventoryError(
                f"no site {name!r}", path=self.path, key="sites",
                fix=f"use one of {', '.join(sorted(self.sites))}") from None

    def gateway(self, site: str) -> Gateway:
        """The VPN gateway of `site` (use `host(gateway.host)` for its SSH endpoint)."""
        return self.site(site).gateway

    def host(self, name: str) -> SshHost:
        """The SSH host called `name`; unknown → InventoryError listing the known names."""
        try:
            return self.hosts[name]
        except KeyError:
            raise InventoryError(
                f"no host {name!r}", path=self.path, key="hosts",
                fix=f"use one of {', '.join(sorted(self.hosts))} or add it under `hosts`") from None

    def scope(self) -> dict:
        """What the drill acts on, as a JSON-safe dict without secrets (for journals and reports)."""

        def endpoint(db: MysqlEndpoint) -> str:
            via = f" via {db.via}" if db.via else ""
            return f"{db.host} {db.address}:{db.port}{via}"

        return {
            "inventory": self.name,
            "inventory_path": str(self.path),
            "pair": self.pair,
            "connection": self.drill.connection,
            "fault_site": self.drill.fault_site,
            "peer_site": self.drill.peer_site,
            "gateways": {
                name: f"{site.gateway.host} {self.hosts[site.gateway.host].address}:"
                      f"{self.hosts[site.gateway.host].port}"
                for name, site in self.sites.items()
            },
            "connections": {name: site.gateway.connection for name, site in self.sites.items()},
            "children": {name: site.gateway.child for name, site in self.sites.items()},
            "controls": {name: site.gateway.control for name, site in self.sites.items()},
            "source": endpoint(self.source),
            "source_site": self.source.site,
            "replica": endpoint(self.replica),
            "replica_site": self.replica.site,
            "database": self.source.database,
            "subnets": {
                name: {"local": site.gateway.local_subnet, "remote": site.gateway.remote_subnet}
                for name, site in self.sites.items()
            },
        }


@dataclass(frozen=True)
class FleetSite:
    """A site of the file as written, whatever pair it is in: its gateway's SSH host (with `control`/`helper`), its
    database's SSH host (None: a transit site without a database) and the Prefect work pool near it (or None). The
    tunnel's keys (connection, child, subnets) belong to a pair: see `Fleet.pair(name).gateway(site)`."""

    name: str
    gateway_host: str
    control: str = "auto"
    helper: str = DEFAULT_HELPER_PATH
    database_host: str | None = None
    work_pool: str | None = None


def _pair_name_shown(name: object) -> str:
    """A chosen pair name for a message: repeated only when it is a plain name (never option- or shell-looking text,
    never long)."""
    if isinstance(name, str) and name_problem(name) is None:
        return repr(name)
    return "(a value that is not a plain name, not shown)"


@dataclass(frozen=True)
class Fleet:
    """A loaded, checked inventory file as a set of replication pairs (docs/INVENTORY.md, "Version 2: fleets").

    `pairs` maps each pair's name to its *pair view*, an ordinary `Inventory` with the pair's two sites, in file
    order; a version 1 file is a fleet of one pair named after its replica's site. Treat the dicts as read-only."""

    path: Path
    name: str
    version: int
    pairs: dict[str, Inventory] = field(repr=False)
    sites: dict[str, FleetSite] = field(repr=False)

    def pair(self, name: str) -> Inventory:
        """The pair view called `name`; unknown → InventoryError listing the pairs (a name that is not a plain name
        is not repeated)."""
        if isinstance(name, str) and name in self.pairs:
            return self.pairs[name]
        raise InventoryError(
            f"no pair {_pair_name_shown(name)}; this inventory holds {self._holds()}", path=self.path, key="pairs",
            fix=f"choose one of {', '.join(self.pairs)}")

    def choose(self, name: str | None = None, origin: str = "the `pair` argument") -> Inventory:
        """The pair view `name`, or the only pair when `name` is None. Several pairs and none chosen, or a name
        that is not a pair → InventoryError saying which pairs there are (`origin` says where the name came from)."""
        if name is None:
            if len(self.pairs) == 1:
                return next(iter(self.pairs.values()))
            raise InventoryError(f"this inventory holds {self._holds()}: choose one", path=self.path,
                                 fix="set the `pair` configuration key (chaos run --var pair=NAME; "
                                     "drpoc commands: --pair NAME or DRPOC_PAIR)")
        if not isinstance(name, str) or name not in self.pairs:
            raise InventoryError(
                f"no pair {_pair_name_shown(name)} (from {origin}); this inventory holds {self._holds()}",
                path=self.path,
                fix=f"set `pair` to one of {', '.join(self.pairs)} (chaos run --var pair=NAME; drpoc commands: "
                    "--pair NAME)")
        return self.pairs[name]

    def _holds(self) -> str:
        n = len(self.pairs)
        return f"{n} pair{'s' if n != 1 else ''} ({', '.join(self.pairs)})"

    def gateway_hosts(self, pair_name: str) -> set[str]:
        """The SSH host names of the pair's two gateways (one name when both sites share a gateway)."""
        return {site.gateway.host for site in self.pair(pair_name).sites.values()}

    def fault_gateway(self, pair_name: str) -> str:
        """The SSH host name of the gateway the pair's drill takes its connection down on."""
        inv = self.pair(pair_name)
        return inv.sites[inv.drill.fault_site].gateway.host

    def others(self, pair_name: str) -> list[Inventory]:
        """Every pair view but `pair_name`'s, in file order."""
        self.pair(pair_name)
        return [inv for name, inv in self.pairs.items() if name != pair_name]
