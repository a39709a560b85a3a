"""The rules of docs/INVENTORY.md: parsed YAML data → a checked, frozen `Inventory`.

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
    """Check parsed inventory `data` and build the `Inventory`; `lines` maps key paths to lines (for messages)."""
    return _Checker(path, lines).build(data)


class _Checker:
    def __init__(self, path: Path, lines: dict[str, int]):
        self.path = path
        self.lines = lines

    def fail(self, key: str, problem: str, fix: str | None = None) -> NoReturn:
        line = self.lines.get(key)
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
    def name(self, value: Any, key: str, what: str, required: Literal[True] = ...) -> str: ...
    @overload
    def name(self, value: Any, key: str, what: str, required: bool) -> str | None: ...
    def name(self, value: Any, key: str, what: str, required: bool = True) -> str | None:
        """A connection/child/host/site name: it reaches a gateway's command line, so it is checked strictly."""
        text = self.string(value, key, required)
        if text is None:
            return None
        problem = name_problem(text)
        if problem:
            self.fail(key, f"{what} {_show(text, key)} {problem}", "rename it (in strongSwan's config too)")
        return text

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

    def build(self, data) -> Inventory:
        if data is None:
            self.fail("", "the file is empty", "write an inventory as in docs/INVENTORY.md")
        if not isinstance(data, dict):
            self.fail("", f"the top level must be a mapping, not {type(data).__name__}",
                      "write an inventory as in docs/INVENTORY.md")
        self.mapping(data, "", _TOP_KEYS)
        version = data.get("version", _MISSING)
        if version is _MISSING:
            self.fail("version", "missing", f"add `version: {FORMAT_VERSION}` at the top")
        if version != FORMAT_VERSION or isinstance(version, bool):
            self.fail("version", f"unsupported version {version!r}",
                      f"this drpoc-chaos reads version {FORMAT_VERSION}")
        name = self.string(data.get("name"), "name", required=False) or self.path.stem

        hosts = self.build_hosts(data)
        sites = self.build_sites(data, hosts)
        drill = self.build_drill(data.get("drill", _MISSING), sites)
        heartbeat = self.build_heartbeat(data.get("heartbeat"))
        return Inventory(path=self.path, name=name, hosts=hosts, sites=sites, drill=drill, heartbeat=heartbeat,
                         replication=self.build_replication(data.get("replication")))

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
            self.name(name, key, "site name")
            if name in ROLE_WORDS:
                self.fail(key, f"site name {name!r} is a role word (experiments say {', '.join(ROLE_WORDS)} "
                          "for the drill's roles)", "name the site after the place, e.g. aws or dc1")
            entry = self.mapping(entry, key, {"gateway", "database"})
            gw = self.mapping(entry.get("gateway", _MISSING), f"{key}.gateway", _GATEWAY_KEYS)
            connection = self.name(gw.get("connection", _MISSING), f"{key}.gateway.connection", "connection")
            control = self.string(gw.get("control"), f"{key}.gateway.control", required=False) or "auto"
            if control not in CONTROLS:
                self.fail(f"{key}.gateway.control", f"{_show(control)} is not one of {', '.join(CONTROLS)}",
                          "write ipsec (stroke, ipsec.conf), swanctl (vici, swanctl.conf) or auto")
            gateway = Gateway(
                site=name,
                host=self.known_host(gw.get("host", _MISSING), f"{key}.gateway.host", hosts),
                connection=connection,
                local_subnet=self.subnet(gw.get("local_subnet", _MISSING), f"{key}.gateway.local_subnet"),
                remote_subnet=self.subnet(gw.get("remote_subnet", _MISSING), f"{key}.gateway.remote_subnet"),
                child=self.name(gw.get("child"), f"{key}.gateway.child", "child", required=False) or connection,
                control=control,
                helper=self.helper_path(gw.get("helper"), f"{key}.gateway.helper"),
            )
            database = self.build_database(name, entry.get("database", _MISSING), mysql_defaults, hosts)
            roles[database.role].append(name)
            sites[name] = Site(name=name, gateway=gateway, database=database)
        for role in ROLES:
            if len(roles[role]) != 1:
                found = f"found {len(roles[role])}" + (f" ({', '.join(roles[role])})" if roles[role] else "")
                self.fail("sites", f"exactly one `{role}` database is needed, {found}",
                          f"set `role: {role}` on exactly one site's database")
        return sites

    def build_database(self, site: str, value, defaults: dict, hosts) -> MysqlEndpoint:
        key = f"sites.{site}.database"
        db = self.mapping(value, key, _DATABASE_KEYS)
        role = self.string(db.get("role", _MISSING), f"{key}.role")
        if role not in ROLES:
            self.fail(f"{key}.role", f"role must be source or replica, got {role!r}", "write source or replica")
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

    def build_drill(self, value, sites: dict[str, Site]) -> DrillTarget:
        drill = self.mapping(value, "drill", _DRILL_KEYS, required=False)
        source_site = next(s.name for s in sites.values() if s.database.role == "source")
        fault = self.string(drill.get("fault_site"), "drill.fault_site", required=False) or source_site
        if fault not in sites:
            self.fail("drill.fault_site", f"{fault!r} is not a site", f"use one of {', '.join(sorted(sites))}")
        others = [s for s in sites if s != fault]
        peer = self.string(drill.get("peer_site"), "drill.peer_site", required=False)
        if peer is None:
            if len(others) != 1:
                self.fail("drill.peer_site", "missing", f"set it to one of {', '.join(sorted(others))}")
            peer = others[0]
        if peer not in sites:
            self.fail("drill.peer_site", f"{peer!r} is not a site", f"use one of {', '.join(sorted(sites))}")
        if peer == fault:
            self.fail("drill.peer_site", "is the same site as drill.fault_site", "name the other site")
        connection = self.name(drill.get("connection"), "drill.connection", "connection", required=False) \
            or sites[fault].gateway.connection
        return DrillTarget(connection=connection, fault_site=fault, peer_site=peer)
