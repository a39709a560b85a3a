"""The rules of docs/INVENTORY.md: parsed YAML data → a checked, frozen `Inventory` (version 1) or `Fleet`.

Version 2 ("fleets") reuses every version 1 check: its sites' gateways and databases and each pair's tunnel sides
and drill block go through the same builders (`gateway`, `build_database`, `build_drill`), so a pair view is built
exactly like a version 1 inventory, with key paths under `pairs.<pair>` where the value was written there.

Every error names the key path and the line (or the closest parent's line) and says how to fix it; a value is never
echoed under a secret-looking key (`_show`) and a password is never echoed at all.

Paths in the file (`key_file`, `known_hosts`, `password: {file: ...}`) may use `~`; relative paths are taken from
the directory of the inventory file.

Accepted beyond the documented keys: `read_timeout` and `write_timeout` (seconds, default 30) in `mysql_defaults`
and in a database's `mysql`, and `user`/`password`/`database`/`connect_timeout` overrides in a database's `mysql`.
`drill` may be left out: the fault is then put at the source's site, the peer is the other site and the connection
is the fault site's gateway connection.
"""
from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, NoReturn, overload

from ..core.identifiers import ROLE_WORDS, address_problem, login_problem, name_problem, sql_ident_problem
from ..core.secret_shapes import is_secret_key
from .models import (
    CONTROLS,
    DEFAULT_HELPER_PATH,
    HEARTBEAT_FORMATS,
    DrillTarget,
    Fleet,
    FleetSite,
    Gateway,
    Heartbeat,
    Inventory,
    InventoryError,
    MysqlEndpoint,
    MysqlTls,
    Replication,
    Site,
    SshHost,
)
from .secrets import _ENV_NAME_RE, _WHAT, _WHAT_SHORT, SECRET_KINDS, _plausible_name
from .sshconfig import apply_ssh_config, read_ssh_config, ssh_config_path

FORMAT_VERSION = 1
FORMAT_VERSIONS = (1, 2)  # 2: fleets (many sites and replication pairs), docs/INVENTORY.md
ROLES = ("source", "replica")

_TOP_KEYS = {"version", "name", "ssh_defaults", "hosts", "mysql_defaults", "sites", "drill"}
_TOP_KEYS |= {"heartbeat", "replication"}
_HEARTBEAT_KEYS = {"table", "format"}
_QUALIFIED_TABLE = re.compile(r"^[A-Za-z0-9_$]{1,64}\.[A-Za-z0-9_$]{1,64}$")
_SSH_KEYS = {"user", "sudo", "key_file", "known_hosts", "connect_timeout", "command_timeout", "jump"}
_SSH_KEYS |= {"ssh_config"}
_HOST_KEYS = _SSH_KEYS | {"address", "port"}
_MYSQL_DEFAULT_KEYS = {"user", "password", "database", "connect_timeout", "read_timeout", "write_timeout", "port"}
_MYSQL_DEFAULT_KEYS |= {"ssl", "option_file", "option_group"}
_MYSQL_KEYS = _MYSQL_DEFAULT_KEYS | {"address", "via", "replication_address", "replication_port"}
_SSL_KEYS = {"ca", "cert", "key", "verify_identity"}
_GATEWAY_KEYS = {"host", "connection", "child", "control", "helper", "local_subnet", "remote_subnet"}
_DATABASE_KEYS = {"role", "host", "mysql"}
_DRILL_KEYS = {"connection", "fault_site", "peer_site"}
# version 2: a site is a gateway (no tunnel keys) and maybe a database; a pair is two sites and the tunnel between
_V2_TOP_KEYS = (_TOP_KEYS - {"drill"}) | {"pairs"}
_V2_SITE_KEYS = {"gateway", "database", "work_pool"}
_V2_GATEWAY_KEYS = {"host", "control", "helper"}
_TUNNEL_SIDE_KEYS = _GATEWAY_KEYS - _V2_GATEWAY_KEYS
_PAIR_KEYS = {"source", "replica", "tunnel", "drill"}
_MISSING = object()
_MAX_SHOWN = 60


def _show(value: Any, key: str | None = None) -> str:
    """A value for an error message: never under a secret-looking key, never long, never a container's content."""
    last = (key or "").rsplit(".", 1)[-1]
    if key and any(is_secret_key(part) for part in key.split(".")):
        return f"a {type(value).__name__} (value not shown: `{last}` may hold a secret)"
    if isinstance(value, (dict, list, tuple, set)):
        return f"a {type(value).__name__}"
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else f"{text[:_MAX_SHOWN]}… ({len(text)} characters)"


def build_inventory(data, path: Path, lines: dict[str, int]) -> Inventory:
    """Check parsed version 1 inventory `data` and build the `Inventory`; `lines` maps key paths to lines (for
    messages). A version 2 file is refused here: read it with `build_fleet`."""
    return _Checker(path, lines).build(data)


def build_fleet(data, path: Path, lines: dict[str, int]) -> Fleet:
    """Check parsed inventory `data` (version 1 or 2) and build the `Fleet`: a version 1 file is one pair, named
    after its replica's site."""
    checker = _Checker(path, lines)
    if checker.version(data) == 1:
        inventory = checker.build(data)
        return Fleet(path=path, name=inventory.name, version=1, pairs={inventory.pair: inventory},
                     sites={name: FleetSite(name=name, gateway_host=site.gateway.host, control=site.gateway.control,
                                            helper=site.gateway.helper, database_host=site.database.host)
                            for name, site in inventory.sites.items()})
    return checker.build_fleet(data)


class _Checker:
    def __init__(self, path: Path, lines: dict[str, int]):
        self.path = path
        self.lines = lines

    def fail(self, key: str, problem: str, fix: str | None = None, at: str | None = None) -> NoReturn:
        """Raise the InventoryError for `key`; its line is `key`'s (or the closest parent's), or `at`'s when given
        (e.g. a missing top-level section: the line that makes it needed)."""
        line = self.lines.get(at if at is not None else key)
        if line is None:  # point at the closest parent we know
            parent = key
            while "." in parent and line is None:
                parent = parent.rsplit(".", 1)[0]
                line = self.lines.get(parent)
        raise InventoryError(problem, path=self.path, key=key, fix=fix, line=line)

    # --- typed getters -------------------------------------------------------------------------------------

    def mapping(self, value, key: str, allowed: set[str] | None = None, required: bool = True) -> dict:
        if value is None or value is _MISSING:
            if required:
                self.fail(key, "missing", f"add a `{key.rsplit('.', 1)[-1]}:` section (see docs/INVENTORY.md)")
            return {}
        if not isinstance(value, dict):
            self.fail(key, f"must be a mapping, not {type(value).__name__}", "see docs/INVENTORY.md for the shape")
        for k in value:
            if not isinstance(k, str):
                self.fail(key, f"key {k!r} is not a string", "quote it")
            if allowed is not None and k not in allowed:
                self.fail(f"{key}.{k}" if key else k, "unknown key",
                          f"remove it or use one of {', '.join(sorted(allowed))}")
        return value

    @overload
    def string(self, value: Any, key: str, required: Literal[True] = ...) -> str: ...
    @overload
    def string(self, value: Any, key: str, required: bool) -> str | None: ...
    def string(self, value: Any, key: str, required: bool = True) -> str | None:
        if value is None or value is _MISSING:
            if required:
                self.fail(key, "missing", f"set `{key.rsplit('.', 1)[-1]}`")
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"must be a non-empty string, not {_show(value, key)}",
                      "quote it if YAML read it as something else")
        return value.strip()

    @overload
    def name(self, value: Any, key: str, what: str, required: Literal[True] = ..., fix: str = ...) -> str: ...
    @overload
    def name(self, value: Any, key: str, what: str, required: bool, fix: str = ...) -> str | None: ...
    def name(self, value: Any, key: str, what: str, required: bool = True,
             fix: str = "rename it (in strongSwan's config too)") -> str | None:
        """A connection/child/host/site/pair name: it reaches a gateway's command line, so it is checked strictly."""
        text = self.string(value, key, required)
        if text is None:
            return None
        problem = name_problem(text)
        if problem:
            self.fail(key, f"{what} {_show(text, key)} {problem}", fix)
        return text

    def control(self, value, key: str) -> str:
        control = self.string(value, key, required=False) or "auto"
        if control not in CONTROLS:
            self.fail(key, f"{_show(control)} is not one of {', '.join(CONTROLS)}",
                      "write ipsec (stroke, ipsec.conf), swanctl (vici, swanctl.conf) or auto")
        return control

    def port(self, value, key: str, default: int | None = None) -> int:
        if value is None or value is _MISSING:
            if default is None:
                self.fail(key, "missing", "set a port 1–65535")
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            self.fail(key, f"port must be an integer 1–65535, got {_show(value, key)}", "set a port 1–65535")
        return value

    def seconds(self, value, key: str, default: float) -> float:
        if value is None or value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            self.fail(key, f"must be a positive number of seconds, got {_show(value, key)}", "write e.g. 5")
        return float(value)

    def boolean(self, value, key: str, default: bool) -> bool:
        if value is None or value is _MISSING:
            return default
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, got {_show(value, key)}", "write true or false")
        return value

    def file_path(self, value, key: str) -> str | None:
        text = self.string(value, key, required=False)
        if text is None:
            return None
        p = Path(text).expanduser()
        if not p.is_absolute():
            p = self.path.parent / p
        return str(p)

    def subnet(self, value, key: str) -> str:
        text = self.string(value, key)
        try:
            net = ipaddress.ip_network(text, strict=True)
        except ValueError:
            try:
                loose = ipaddress.ip_network(text, strict=False)
            except ValueError:
                self.fail(key, f"{text!r} is not a CIDR subnet", "write it like 10.20.0.0/16")
            self.fail(key, f"{text!r} has host bits set", f"write {loose}")
        if "/" not in text:
            self.fail(key, f"{text!r} has no prefix length", f"write it like {net}")
        return str(net)

    def password_ref(self, value, key: str) -> dict:
        if value is None or value is _MISSING:
            self.fail(key, "missing", "set password: {file: PATH}, {env: NAME} or {secret: NAME}")
        if not isinstance(value, dict):
            # never echo the value: it may be a literal password
            self.fail(key, "must be a reference, never a literal password",
                      "move the password to a file or a variable and write password: {file: PATH}, "
                      "{env: NAME} or {secret: NAME}")
        if len(value) != 1 or next(iter(value)) not in SECRET_KINDS:
            keys = [k if isinstance(k, str) and _ENV_NAME_RE.match(k) and len(k) <= 20 else "<a key not shown>"
                    for k in value]
            self.fail(key, f"a reference has exactly one of env, file, secret (got {', '.join(keys) or 'none'})",
                      "write password: {file: PATH}, {env: NAME} or {secret: NAME}")
        kind, name = next(iter(value.items()))
        if not isinstance(name, str) or not name.strip():
            self.fail(f"{key}.{kind}", "must be a non-empty string", f"write {kind}: <name>")
        if not _plausible_name(kind, name.strip()):
            # e.g. password: {env: "<the password itself>"}: say what is expected, never repeat the value
            self.fail(f"{key}.{kind}", f"must be the name of {_WHAT[kind]}; this value does not look like one and "
                      "is not shown (it may be the password itself)",
                      f"put the password in {_WHAT[kind]} and write {kind}: <{_WHAT_SHORT[kind]}>")
        if kind == "file":
            return {"file": self.file_path(name, f"{key}.{kind}")}
        return {kind: name.strip()}

    # --- the document --------------------------------------------------------------------------------------

    def version(self, data) -> int:
        """The document's format version (1 or 2), after the checks every version shares."""
        if data is None:
            self.fail("", "the file is empty", "write an inventory as in docs/INVENTORY.md")
        if not isinstance(data, dict):
            self.fail("", f"the top level must be a mapping, not {type(data).__name__}",
                      "write an inventory as in docs/INVENTORY.md")
        self.mapping(data, "")
        version = data.get("version", _MISSING)
        if version is _MISSING:
            self.fail("version", "missing", f"add `version: {FORMAT_VERSION}` at the top")
        if isinstance(version, bool) or version not in FORMAT_VERSIONS:
            self.fail("version", f"unsupported version {_show(version)}",
                      f"this drpoc-chaos reads versions {' and '.join(map(str, FORMAT_VERSIONS))}")
        if version == 2 and "pairs" not in data and ("drill" in data or self._has_roles(data.get("sites"))):
            self.fail("version", "unsupported version 2 for this layout: the file is written as version 1 (sites "
                      "with database roles, a top-level `drill`, no `pairs`)",
                      "write `version: 1`, or describe the replication pairs under `pairs` (docs/INVENTORY.md, "
                      "\"Version 2: fleets\")")
        return int(version)

    @staticmethod
    def _has_roles(sites) -> bool:
        return isinstance(sites, dict) and any(
            isinstance(site, dict) and isinstance(site.get("database"), dict) and "role" in site["database"]
            for site in sites.values())

    def build(self, data) -> Inventory:
        if self.version(data) != 1:
            self.fail("version", "this is a version 2 file (a fleet of pairs)",
                      "read it with load_fleet()/parse_fleet(), or load_inventory() with a pair")
        self.mapping(data, "", _TOP_KEYS)
        name = self.string(data.get("name"), "name", required=False) or self.path.stem

        hosts = self.build_hosts(data)
        sites = self.build_sites(data, hosts)
        drill = self.build_drill(data.get("drill", _MISSING), sites)
        heartbeat = self.build_heartbeat(data.get("heartbeat"))
        replica_site = next(site.name for site in sites.values() if site.database.role == "replica")
        return Inventory(path=self.path, name=name, hosts=hosts, sites=sites, drill=drill, heartbeat=heartbeat,
                         replication=self.build_replication(data.get("replication")), pair=replica_site, version=1)

    # --- version 2: fleets ---------------------------------------------------------------------------------

    def build_fleet(self, data) -> Fleet:
        if "drill" in data:
            self.fail("drill", "a version 2 file has no top-level `drill`: each pair has its own",
                      "move it under the pair it is for: pairs.<pair>.drill")
        self.mapping(data, "", _V2_TOP_KEYS)
        name = self.string(data.get("name"), "name", required=False) or self.path.stem
        hosts = self.build_hosts(data)
        mysql_defaults = self.mapping(data.get("mysql_defaults"), "mysql_defaults", _MYSQL_DEFAULT_KEYS,
                                      required=False)
        sites, gateways, databases = self.build_fleet_sites(data, hosts, mysql_defaults)
        heartbeat = self.build_heartbeat(data.get("heartbeat"))
        replication = self.build_replication(data.get("replication"))

        if data.get("pairs") is None:
            self.fail("pairs", "missing: a version 2 file describes its replication pairs under `pairs`",
                      "add a `pairs:` section: each pair names a source site, a replica site and the tunnel between "
                      "them (docs/INVENTORY.md, \"Version 2: fleets\")", at="version")
        raw = self.mapping(data["pairs"], "pairs")
        if not raw:
            self.fail("pairs", "no pairs", "describe each replication pair under `pairs` (a source site, a replica "
                      "site and the tunnel between them)")
        pairs: dict[str, Inventory] = {}
        replica_of: dict[tuple, str] = {}  # a database's endpoint → the pair it is the replica of
        used: dict[tuple[str, str, str], tuple[str, str]] = {}  # (kind, gateway host, name) → (pair, key)
        for pair_name, entry in raw.items():
            key = f"pairs.{pair_name}"
            self.name(pair_name, key, "pair name", fix="rename the pair")
            if pair_name in ROLE_WORDS:
                self.fail(key, f"pair name {pair_name!r} is a role word (experiments say {', '.join(ROLE_WORDS)} "
                          "for the drill's roles)", "name the pair after what it replicates, or its spoke, e.g. dc1")
            entry = self.mapping(entry, key, _PAIR_KEYS)
            ends: dict[str, str] = {}
            for role in ROLES:
                site = self.name(entry.get(role, _MISSING), f"{key}.{role}", "site name",
                                 fix=f"use one of the sites: {', '.join(sites)}")
                if site not in sites:
                    self.fail(f"{key}.{role}", f"{site!r} is not a site", f"use one of {', '.join(sites)}")
                if site not in databases:
                    self.fail(f"{key}.{role}", f"site {site!r} has no database, so it cannot be a pair's {role}",
                              f"add a `database` to sites.{site}, or name a site that has one")
                ends[role] = site
            if ends["source"] == ends["replica"]:
                self.fail(f"{key}.replica", f"is the same site as {key}.source ({ends['source']!r})",
                          "a pair replicates between two sites: name the other one")
            pair_sites: dict[str, Site] = {}
            tunnel = self.mapping(entry.get("tunnel", _MISSING), f"{key}.tunnel")
            for side in tunnel:
                if side not in ends.values():
                    self.fail(f"{key}.tunnel.{side}", f"{_show(side)} is not one of the pair's sites "
                              f"({ends['source']}, {ends['replica']})",
                              "the tunnel has exactly two sides, keyed by the pair's source and replica sites")
            for role, site in ends.items():
                side = self.mapping(tunnel.get(site, _MISSING), f"{key}.tunnel.{site}", _TUNNEL_SIDE_KEYS)
                gateway = self.gateway(site, gateways[site], f"sites.{site}.gateway", side, f"{key}.tunnel.{site}",
                                       hosts)
                pair_sites[site] = Site(name=site, gateway=gateway, database=replace(databases[site], role=role))
            drill = self.build_drill(entry.get("drill", _MISSING), pair_sites, f"{key}.drill")

            replica = pair_sites[ends["replica"]].database
            endpoint = (replica.address, replica.port, replica.via)
            source = pair_sites[ends["source"]].database
            if (source.address, source.port, source.via) == endpoint:
                self.fail(f"{key}.replica", f"sites {ends['source']} and {ends['replica']} name the same database "
                          f"({replica.address}:{replica.port})", "a pair's source and replica are two servers")
            if endpoint in replica_of:
                other = replica_of[endpoint]
                self.fail(f"{key}.replica", f"the database of site {ends['replica']!r} is already the replica of pair "
                          f"{other!r}: pairs {other} and {pair_name} would both stop its replication in a drill",
                          "a database is the replica of at most one pair (it may be the source of many): remove "
                          "one of the two pairs")
            replica_of[endpoint] = pair_name
            self.claim_tunnel_names(pair_name, key, pair_sites, drill, used)

            others = [s for s in pair_sites if s != drill.fault_site]
            work_pool = sites[drill.fault_site].work_pool or next(
                (sites[s].work_pool for s in others if sites[s].work_pool), None)
            ordered = {ends["source"]: pair_sites[ends["source"]], ends["replica"]: pair_sites[ends["replica"]]}
            pairs[pair_name] = Inventory(path=self.path, name=name, hosts=hosts, sites=ordered, drill=drill,
                                         heartbeat=heartbeat, replication=replication, pair=pair_name, version=2,
                                         work_pool=work_pool)
        return Fleet(path=self.path, name=name, version=2, pairs=pairs, sites=sites)

    def claim_tunnel_names(self, pair: str, key: str, sites: dict[str, Site], drill: DrillTarget,
                           used: dict[tuple[str, str, str], tuple[str, str]]) -> None:
        """Two pairs may not use one connection (or child) name on one gateway host: a drill taking one down would
        take the other down. `used` holds what the pairs before this one claimed."""
        claims: list[tuple[str, str, str, str]] = []  # (kind, host, name, key)
        for site in sites.values():
            gw = site.gateway
            claims.append(("connection", gw.host, gw.connection, f"{key}.tunnel.{site.name}.connection"))
            claims.append(("child", gw.host, gw.child, f"{key}.tunnel.{site.name}.child"))
        fault_gw = sites[drill.fault_site].gateway
        if drill.connection != fault_gw.connection:
            claims.append(("connection", fault_gw.host, drill.connection, f"{key}.drill.connection"))
        for kind, host, name, claim_key in claims:
            owner = used.get((kind, host, name))
            if owner is not None and owner[0] != pair:
                self.fail(claim_key, f"pairs {owner[0]} and {pair} both use {kind} {name!r} on gateway host "
                          f"{host!r} (at {owner[1]}): a drill taking one down would take the other down",
                          f"give each pair its own {kind} name on {host} (and in its strongSwan config)")
        for kind, host, name, claim_key in claims:
            used.setdefault((kind, host, name), (pair, claim_key))

    def build_fleet_sites(self, data, hosts, mysql_defaults: dict
                          ) -> tuple[dict[str, FleetSite], dict[str, dict], dict[str, MysqlEndpoint]]:
        """The `sites` of a version 2 file: each site as written, its raw gateway block (host, control, helper: the
        tunnel's keys come from each pair) and its database (role "" until a pair gives it one)."""
        raw = self.mapping(data.get("sites", _MISSING), "sites")
        if not raw:
            self.fail("sites", "no sites", "describe each site (a gateway and, usually, a database) under `sites`")
        sites: dict[str, FleetSite] = {}
        gateways: dict[str, dict] = {}
        databases: dict[str, MysqlEndpoint] = {}
        for name, entry in raw.items():
            key = f"sites.{name}"
            self.site_name(name, key)
            entry = self.mapping(entry, key)
            for misplaced in ("role", "connection", "local_subnet", "remote_subnet"):
                if misplaced in entry:
                    self.fail(f"{key}.{misplaced}", "a version 2 site has no roles and no tunnel keys",
                              "a pair says which site is source and replica, and holds each side of its tunnel")
            self.mapping(entry, key, _V2_SITE_KEYS)
            gw = self.mapping(entry.get("gateway", _MISSING), f"{key}.gateway")
            for k in gw:
                if k in _TUNNEL_SIDE_KEYS:
                    self.fail(f"{key}.gateway.{k}", "in version 2 the tunnel's keys belong to a pair, not the site",
                              f"move it to pairs.<pair>.tunnel.{name}.{k}")
            self.mapping(gw, f"{key}.gateway", _V2_GATEWAY_KEYS)
            host = self.known_host(gw.get("host", _MISSING), f"{key}.gateway.host", hosts)
            control = self.control(gw.get("control"), f"{key}.gateway.control")
            helper = self.helper_path(gw.get("helper"), f"{key}.gateway.helper")
            gateways[name] = gw
            database_host = None
            if entry.get("database") is not None:
                databases[name] = self.build_database(name, entry["database"], mysql_defaults, hosts, role="")
                database_host = databases[name].host
            work_pool = self.name(entry.get("work_pool"), f"{key}.work_pool", "work pool", required=False,
                                  fix="use the Prefect work pool's name (rename the pool if needed)")
            sites[name] = FleetSite(name=name, gateway_host=host, control=control, helper=helper,
                                    database_host=database_host, work_pool=work_pool)
        return sites, gateways, databases

    def build_replication(self, value) -> Replication | None:
        repl = self.mapping(value, "replication", {"user", "password"}, required=False)
        if not repl:
            return None
        return Replication(user=self.login(repl.get("user", _MISSING), "replication.user"),
                           password_ref=self.password_ref(repl.get("password", _MISSING), "replication.password"))

    def build_heartbeat(self, value) -> Heartbeat:
        hb = self.mapping(value, "heartbeat", _HEARTBEAT_KEYS, required=False)
        table = self.string(hb.get("table"), "heartbeat.table", required=False) or Heartbeat.table
        if not _QUALIFIED_TABLE.match(table):
            self.fail("heartbeat.table", f"{_show(table)} is not schema.table (letters, digits, _ and $)",
                      "write e.g. percona.heartbeat")
        fmt = self.string(hb.get("format"), "heartbeat.format", required=False) or Heartbeat.format
        if fmt not in HEARTBEAT_FORMATS:
            self.fail("heartbeat.format", f"{_show(fmt)} is not a heartbeat format",
                      "write drpoc (the drill writes the rows) or pt-heartbeat (a pt-heartbeat --update daemon does)")
        return Heartbeat(table=table, format=fmt)

    def build_hosts(self, data) -> dict[str, SshHost]:
        defaults = self.mapping(data.get("ssh_defaults"), "ssh_defaults", _SSH_KEYS - {"jump"}, required=False)
        raw = self.mapping(data.get("hosts", _MISSING), "hosts")
        if not raw:
            self.fail("hosts", "no hosts", "list every SSH endpoint under `hosts`")
        hosts: dict[str, SshHost] = {}
        for name, entry in raw.items():
            key = f"hosts.{name}"
            self.name(name, key, "host name")
            entry = self.mapping(entry, key, _HOST_KEYS)

            def pick(k: str, entry: dict[str, Any] = entry, key: str = key) -> tuple[Any, str]:  # bound now (B023)
                if k in entry:
                    return entry[k], f"{key}.{k}"
                return defaults.get(k, _MISSING), f"ssh_defaults.{k}"

            user, ukey = pick("user")  # may come from ssh_config (User): checked once that is applied
            sudo, skey = pick("sudo")
            key_file, kkey = pick("key_file")
            known_hosts, hkey = pick("known_hosts")
            connect_timeout, ckey = pick("connect_timeout")
            command_timeout, tkey = pick("command_timeout")
            hosts[name] = SshHost(
                name=name,
                address=self.address(entry.get("address", _MISSING), f"{key}.address"),
                port=self.port(entry.get("port"), f"{key}.port", default=22),
                user=self.login(user, ukey) if user is not _MISSING else "",
                sudo=self.boolean(sudo, skey, True),
                key_file=self.file_path(key_file, kkey) if key_file is not _MISSING else None,
                known_hosts=self.file_path(known_hosts, hkey) if known_hosts is not _MISSING else None,
                connect_timeout=self.seconds(connect_timeout, ckey, 5.0),
                command_timeout=self.seconds(command_timeout, tkey, 30.0),
                jump=self.string(entry.get("jump"), f"{key}.jump", required=False),
                set_keys=frozenset(k for k in _SSH_KEYS | {"port"} if k in entry or k in defaults),
            )
        for host in hosts.values():
            if host.jump is None:
                continue
            self.known_host(host.jump, f"hosts.{host.name}.jump", hosts)
            seen = [host.name]
            hop: str | None = host.jump
            while hop is not None:
                if hop in seen:
                    self.fail(f"hosts.{host.name}.jump", f"jump hosts loop: {' → '.join(seen + [hop])}",
                              "make the chain end at a host without `jump`")
                seen.append(hop)
                hop = hosts[hop].jump
        hosts = self.apply_ssh_configs(raw, defaults, hosts)
        for name, host in hosts.items():
            if not host.user:
                self.fail(f"hosts.{name}.user", "no login user",
                          "set `user` in ssh_defaults or on the host (or User in its ssh_config entry)")
        resolved: dict[str, SshHost] = {}
        visiting: list[str] = []

        def resolve(name: str) -> SshHost:
            if name in visiting:  # only an ssh_config ProxyJump can close a loop here: inventory jumps were checked
                self.fail(f"hosts.{visiting[0]}", f"jump hosts loop through ssh_config ProxyJump: "
                          f"{' → '.join(visiting + [name])}", "make the chain end at a host without a jump")
            if name not in resolved:
                visiting.append(name)
                host = hosts[name]
                needs = host.jump is not None and host.jump in hosts and host.jump_host is None
                resolved[name] = replace(host, jump_host=resolve(host.jump)) if needs else host  # type: ignore[arg-type]
                visiting.pop()
            return resolved[name]

        return {name: resolve(name) for name in hosts}

    def address(self, value, key: str) -> str:
        text = self.string(value, key)
        problem = address_problem(text)
        if problem:
            self.fail(key, f"{_show(text, key)} {problem}", "write an IP address or a DNS name")
        return text

    def login(self, value, key: str) -> str:
        text = self.string(value, key)
        problem = login_problem(text)
        if problem:
            self.fail(key, f"{_show(text, key)} {problem}", "write the login name as on the host")
        return text

    def helper_path(self, value, key: str) -> str:
        text = self.string(value, key, required=False)
        if text is None:
            return DEFAULT_HELPER_PATH
        if not text.startswith("/") or not all(p and name_problem(p) is None for p in text[1:].split("/")):
            self.fail(key, f"{_show(text, key)} is not an absolute path of plain names",
                      f"write where the helper is installed, e.g. {DEFAULT_HELPER_PATH}")
        return text

    def apply_ssh_configs(self, raw: dict, defaults: dict, hosts: dict[str, SshHost]) -> dict[str, SshHost]:
        """What each host's ssh_config (the inventory's `ssh_config`, else ~/.ssh/config when it exists) adds."""
        parsed: dict[str, Any] = {}
        out: dict[str, SshHost] = {}
        for name, host in hosts.items():
            entry = raw[name]
            value, key = (entry["ssh_config"], f"hosts.{name}.ssh_config") if "ssh_config" in entry else \
                (defaults.get("ssh_config"), "ssh_defaults.ssh_config")
            text = self.string(value, key, required=False)
            path, explicit = ssh_config_path(text, self.path.parent)
            if path is None:
                out[name] = host
                continue
            if path not in parsed:
                try:
                    parsed[path] = read_ssh_config(path)
                except FileNotFoundError:
                    if explicit:
                        self.fail(key, f"ssh_config {path} does not exist", "fix the path, or write `none` to read "
                                  "no ssh_config")
                    parsed[path] = None
                except (OSError, UnicodeDecodeError, ValueError) as exc:
                    self.fail(key, f"cannot read ssh_config {path} ({exc})", "fix that file or the path")
            if parsed[path] is None:
                out[name] = host
                continue

            def fail(k: str, problem: str, fix: str) -> NoReturn:
                self.fail(k, problem, fix)
            out[name] = apply_ssh_config(host, parsed[path], path, fail, hosts)
        return out

    def known_host(self, name, key: str, hosts: dict) -> str:
        name = self.string(name, key)
        if name not in hosts:
            self.fail(key, f"{name!r} is not a host of the inventory",
                      f"add it under `hosts` or use one of {', '.join(sorted(hosts))}")
        return name

    def site_name(self, name: Any, key: str) -> None:
        """A site's name: a strict name, and not a role word (experiments use those for the drill's roles)."""
        self.name(name, key, "site name")
        if name in ROLE_WORDS:
            self.fail(key, f"site name {name!r} is a role word (experiments say {', '.join(ROLE_WORDS)} "
                      "for the drill's roles)", "name the site after the place, e.g. aws or dc1")

    def build_sites(self, data, hosts) -> dict[str, Site]:
        raw = self.mapping(data.get("sites", _MISSING), "sites")
        if not raw:
            self.fail("sites", "no sites", "describe the two sites under `sites`")
        mysql_defaults = self.mapping(data.get("mysql_defaults"), "mysql_defaults", _MYSQL_DEFAULT_KEYS,
                                      required=False)
        sites: dict[str, Site] = {}
        roles: dict[str, list[str]] = {r: [] for r in ROLES}
        for name, entry in raw.items():
            key = f"sites.{name}"
            self.site_name(name, key)
            entry = self.mapping(entry, key, {"gateway", "database"})
            gw = self.mapping(entry.get("gateway", _MISSING), f"{key}.gateway", _GATEWAY_KEYS)
            gateway = self.gateway(name, gw, f"{key}.gateway", gw, f"{key}.gateway", hosts)
            database = self.build_database(name, entry.get("database", _MISSING), mysql_defaults, hosts)
            roles[database.role].append(name)
            sites[name] = Site(name=name, gateway=gateway, database=database)
        for role in ROLES:
            if len(roles[role]) != 1:
                found = f"found {len(roles[role])}" + (f" ({', '.join(roles[role])})" if roles[role] else "")
                self.fail("sites", f"exactly one `{role}` database is needed, {found}",
                          f"set `role: {role}` on exactly one site's database")
        return sites

    def gateway(self, site: str, gw: dict, gw_key: str, side: dict, side_key: str, hosts) -> Gateway:
        """A `Gateway` from the gateway's own keys (`gw`: host, control, helper, at `gw_key`) and its side of the
        tunnel (`side`: connection, child, subnets, at `side_key`) — one block in version 1, two in version 2."""
        connection = self.name(side.get("connection", _MISSING), f"{side_key}.connection", "connection")
        control = self.control(gw.get("control"), f"{gw_key}.control")
        return Gateway(
            site=site,
            host=self.known_host(gw.get("host", _MISSING), f"{gw_key}.host", hosts),
            connection=connection,
            local_subnet=self.subnet(side.get("local_subnet", _MISSING), f"{side_key}.local_subnet"),
            remote_subnet=self.subnet(side.get("remote_subnet", _MISSING), f"{side_key}.remote_subnet"),
            child=self.name(side.get("child"), f"{side_key}.child", "child", required=False) or connection,
            control=control,
            helper=self.helper_path(gw.get("helper"), f"{gw_key}.helper"),
        )

    def build_database(self, site: str, value, defaults: dict, hosts, role: str | None = None) -> MysqlEndpoint:
        """A site's database. Version 1 reads its `role`; version 2 passes `role=""` (a pair gives it its role)."""
        key = f"sites.{site}.database"
        if role is None:
            db = self.mapping(value, key, _DATABASE_KEYS)
            role = self.string(db.get("role", _MISSING), f"{key}.role")
            if role not in ROLES:
                self.fail(f"{key}.role", f"role must be source or replica, got {role!r}", "write source or replica")
        else:
            db = self.mapping(value, key)
            if "role" in db:
                self.fail(f"{key}.role", "a version 2 site's database has no role",
                          "remove it: each pair's `source` and `replica` say which database is which")
            self.mapping(db, key, _DATABASE_KEYS - {"role"})
        mysql = self.mapping(db.get("mysql", _MISSING), f"{key}.mysql", _MYSQL_KEYS)

        def pick(k: str) -> tuple[Any, str]:
            if k in mysql:
                return mysql[k], f"{key}.mysql.{k}"
            return defaults.get(k, _MISSING), f"mysql_defaults.{k}"

        option_file_value, okey = pick("option_file")
        option_file = self.readable_file(option_file_value, okey) if option_file_value is not _MISSING else None
        option_group = self.string(*pick("option_group"), required=False) or "client"
        user, ukey = pick("user")
        if user is _MISSING and not option_file:
            self.fail(f"{key}.mysql.user", "no MySQL user",
                      "set `user` in mysql_defaults or in the mysql block (or in an option_file's [client])")
        password, pkey = pick("password")
        if password is _MISSING and not option_file:
            self.fail(f"{key}.mysql.password", "no password reference",
                      "set password: {file: PATH}, {env: NAME} or {secret: NAME} in mysql_defaults or the mysql block")
        ssl = self.mysql_tls(*pick("ssl"))
        if ssl is not None and mysql.get("via") is not None:
            self.fail(f"{key}.mysql.ssl", "TLS through `via` (an SSH channel) is not supported",
                      "the SSH channel already encrypts: remove `ssl`, or reach MySQL directly and keep `ssl`")
        database, dkey = pick("database")
        if database is not _MISSING and database is not None:
            problem = sql_ident_problem(database)
            if problem:
                self.fail(dkey, f"{_show(database, dkey)} {problem}", "write the schema's name")
        port, portkey = pick("port")
        via = mysql.get("via")
        return MysqlEndpoint(
            site=site,
            role=role,
            host=self.known_host(db.get("host", _MISSING), f"{key}.host", hosts),
            address=self.address(mysql.get("address", _MISSING), f"{key}.mysql.address"),
            port=self.port(port, portkey, default=3306),
            user=self.string(user, ukey, required=not option_file) or "",
            password_ref=self.password_ref(password, pkey) if password is not _MISSING else None,
            database=self.string(database, dkey, required=False),
            connect_timeout=self.seconds(*pick("connect_timeout"), 5.0),
            via=self.known_host(via, f"{key}.mysql.via", hosts) if via is not None else None,
            read_timeout=self.seconds(*pick("read_timeout"), 30.0),
            write_timeout=self.seconds(*pick("write_timeout"), 30.0),
            ssl=ssl,
            option_file=option_file,
            option_group=option_group,
            replication_address=self.address(mysql["replication_address"], f"{key}.mysql.replication_address")
            if "replication_address" in mysql else None,
            replication_port=self.port(mysql.get("replication_port"), f"{key}.mysql.replication_port", default=3306),
        )

    def readable_file(self, value, key: str) -> str:
        """A path (relative to the inventory's folder, `~` expanded) that must be a readable file now."""
        path = self.file_path(value, key)
        assert path is not None  # value was given
        p = Path(path)
        if not p.is_file():
            self.fail(key, f"{path} does not exist or is not a file", "fix the path (relative paths are taken from "
                      "the inventory's folder)")
        if not os.access(p, os.R_OK):
            self.fail(key, f"{path} is not readable by this user", "make it readable by the user running the drill")
        return path

    def mysql_tls(self, value, key: str) -> MysqlTls | None:
        if value is _MISSING or value is None:
            return None
        tls = self.mapping(value, key, _SSL_KEYS)
        if "ca" not in tls:
            self.fail(f"{key}.ca", "missing: TLS without checking the server's certificate would trust anyone",
                      "set ca: PATH (the CA that signed the server's certificate)")
        if ("cert" in tls) != ("key" in tls):
            self.fail(f"{key}.{'key' if 'cert' in tls else 'cert'}", "a client certificate needs both cert and key",
                      "set both, or neither")
        return MysqlTls(ca=self.readable_file(tls["ca"], f"{key}.ca"),
                        cert=self.readable_file(tls["cert"], f"{key}.cert") if "cert" in tls else None,
                        key=self.readable_file(tls["key"], f"{key}.key") if "key" in tls else None,
                        verify_identity=self.boolean(tls.get("verify_identity"), f"{key}.verify_identity", True))

    def build_drill(self, value, sites: dict[str, Site], key: str = "drill") -> DrillTarget:
        """The `drill` block at `key` (`pairs.<pair>.drill` in version 2, where `sites` are the pair's two)."""
        drill = self.mapping(value, key, _DRILL_KEYS, required=False)
        of = " of the pair" if key != "drill" else ""
        source_site = next(s.name for s in sites.values() if s.database.role == "source")
        fault = self.string(drill.get("fault_site"), f"{key}.fault_site", required=False) or source_site
        if fault not in sites:
            self.fail(f"{key}.fault_site", f"{_show(fault)} is not a site{of}",
                      f"use one of {', '.join(sorted(sites))}")
        others = [s for s in sites if s != fault]
        peer = self.string(drill.get("peer_site"), f"{key}.peer_site", required=False)
        if peer is None:
            if len(others) != 1:
                self.fail(f"{key}.peer_site", "missing", f"set it to one of {', '.join(sorted(others))}")
            peer = others[0]
        if peer not in sites:
            self.fail(f"{key}.peer_site", f"{_show(peer)} is not a site{of}",
                      f"use one of {', '.join(sorted(sites))}")
        if peer == fault:
            self.fail(f"{key}.peer_site", f"is the same site as {key}.fault_site", "name the other site")
        connection = self.name(drill.get("connection"), f"{key}.connection", "connection", required=False) \
            or sites[fault].gateway.connection
        return DrillTarget(connection=connection, fault_site=fault, peer_site=peer)
