"""The inventory: which hosts, gateways and databases a drill acts on (docs/INVENTORY.md, version 1).

`load_inventory()` finds the YAML file, checks every rule of docs/INVENTORY.md and returns a frozen `Inventory`.
Errors are `InventoryError`s that name the file, the key path (`sites.aws.gateway.host`), the line when known, and
the fix.

The inventory holds **no secret values**: a password is a reference (`{env: NAME}`, `{file: PATH}` or
`{secret: NAME}`) that `resolve_secret()` turns into the value at the moment a connection is opened. Values are
never stored on these objects, never put in a message and never logged.

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
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

__all__ = [
    "DEFAULT_LAB_INVENTORY",
    "DrillTarget",
    "Gateway",
    "Inventory",
    "InventoryError",
    "MysqlEndpoint",
    "Site",
    "SshHost",
    "clear_cache",
    "load_inventory",
    "resolve_secret",
]

DEFAULT_LAB_INVENTORY = Path("/var/lib/drpoc-lab/inventory.yaml")
FORMAT_VERSION = 1
ROLES = ("source", "replica")
SECRET_KINDS = ("env", "file", "secret")

WHERE_TO_LOOK = "run `drpoc lab up` or set DRPOC_INVENTORY / the `inventory` configuration key"
# A real inventory has a few hundred YAML nodes; anchors and aliases are fine, but a document whose aliases expand
# to more than this many nodes (a "billion laughs" alias bomb) is refused before anything walks the expansion.
MAX_EXPANDED_NODES = 20_000
# What a reference may name: an environment variable, a Chaos Toolkit secret (scope.NAME).
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_SECRET_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}(?:\.[A-Za-z_][A-Za-z0-9_-]{0,127})?$")
_MAX_SHOWN = 60


def _plausible_name(kind: str, name: str) -> bool:
    """True when a reference's name reads like a name (or a path), not like the secret value itself."""
    if kind == "env":
        return bool(_ENV_NAME_RE.match(name))
    if kind == "secret":
        return bool(_SECRET_NAME_RE.match(name))
    from .evidence.redact import is_plausible_name  # local: keeps the import graph flat
    return is_plausible_name(name)


def _show(value: Any, key: str | None = None) -> str:
    """A value for an error message: never under a secret-looking key, never long, never a container's content."""
    from .evidence.redact import is_secret_key
    last = (key or "").rsplit(".", 1)[-1]
    if key and any(is_secret_key(part) for part in key.split(".")):
        return f"a {type(value).__name__} (value not shown: `{last}` may hold a secret)"
    if isinstance(value, (dict, list, tuple, set)):
        return f"a {type(value).__name__}"
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else f"{text[:_MAX_SHOWN]}… ({len(text)} characters)"


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

    def __str__(self) -> str:
        return f"{self.name} [{self.address}]:{self.port}"


@dataclass(frozen=True)
class Gateway:
    """A site's VPN gateway: `host` names an entry of `Inventory.hosts`; `connection` is the ipsec conn name."""

    site: str
    host: str
    connection: str
    local_subnet: str
    remote_subnet: str


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
    password_ref: dict
    database: str | None
    connect_timeout: float
    via: str | None = None
    read_timeout: float = 30.0
    write_timeout: float = 30.0

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


@dataclass(frozen=True)
class Inventory:
    """A loaded, checked inventory. Treat the dicts as read-only: the same object is shared through the cache."""

    path: Path
    name: str
    hosts: dict[str, SshHost] = field(repr=False)
    sites: dict[str, Site]
    drill: DrillTarget

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
            "connection": self.drill.connection,
            "fault_site": self.drill.fault_site,
            "peer_site": self.drill.peer_site,
            "gateways": {
                name: f"{site.gateway.host} {self.hosts[site.gateway.host].address}:"
                      f"{self.hosts[site.gateway.host].port}"
                for name, site in self.sites.items()
            },
            "connections": {name: site.gateway.connection for name, site in self.sites.items()},
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


# --------------------------------------------------------------------------------------------------------------
# secrets


def resolve_secret(ref: Mapping, secrets: Mapping | None = None, *, where: str | None = None) -> str:
    """Turn a password reference into its value.

    `{"env": NAME}` → the environment variable; `{"file": PATH}` → the file's content, stripped;
    `{"secret": NAME}` → Chaos Toolkit secrets, either flat (`{NAME: value}`) or scoped (`{scope: {NAME: value}}`,
    the shape chaostoolkit passes to activities); `scope.NAME` picks one scope. Raises InventoryError (naming the
    variable, file or secret, never the value) when it cannot. `where` names the key for the message.
    """
    key = where or "password"
    if not isinstance(ref, Mapping) or len(ref) != 1 or next(iter(ref)) not in SECRET_KINDS:
        raise InventoryError("not a secret reference", key=key,
                             fix="write {env: NAME}, {file: PATH} or {secret: NAME}")
    kind, name = next(iter(ref.items()))
    if not isinstance(name, str) or not name:
        raise InventoryError(f"`{kind}` needs a non-empty name", key=key)
    if not _plausible_name(kind, name):
        # It is probably the secret itself: never repeat it.
        raise InventoryError(f"`{kind}` must name {_WHAT[kind]}, and this does not look like one (not shown: it "
                             "may be the secret itself)", key=key,
                             fix=f"put the value in {_WHAT[kind]} and write {kind}: <{_WHAT_SHORT[kind]}>")
    if kind == "env":
        value = os.environ.get(name)
        if value is None:
            raise InventoryError(f"environment variable {name} is not set", key=key,
                                 fix=f"export {name} in the environment that runs the drill")
        if not value.strip():
            raise InventoryError(f"environment variable {name} is empty", key=key,
                                 fix=f"put the password in {name}")
        return value.strip()
    if kind == "file":
        path = Path(name).expanduser()
        try:
            value = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise InventoryError(f"password file {path} does not exist", key=key,
                                 fix="create it (mode 0600) or fix the path; the lab writes it on `drpoc lab up`"
                                 ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InventoryError(f"cannot read password file {path} ({exc.__class__.__name__}: "
                                 f"{getattr(exc, 'strerror', None) or 'not UTF-8 text'})", key=key,
                                 fix="make it readable by the user running the drill") from None
        if not value:
            raise InventoryError(f"password file {path} is empty", key=key, fix="write the password into it")
        return value
    # kind == "secret"
    return _from_chaos_secrets(name, secrets or {}, key)


_WHAT = {"env": "an environment variable (letters, digits, _)", "file": "a file path",
         "secret": "a Chaos Toolkit secret (NAME or scope.NAME)"}
_WHAT_SHORT = {"env": "NAME", "file": "PATH", "secret": "NAME"}


def _from_chaos_secrets(name: str, secrets: Mapping, key: str) -> str:
    found: list[tuple[str, Any]] = []
    if name in secrets and not isinstance(secrets[name], Mapping):
        found.append(("", secrets[name]))
    else:
        scope, _, short = name.partition(".")
        if short and isinstance(secrets.get(scope), Mapping) and short in secrets[scope]:
            found.append((scope, secrets[scope][short]))
        else:
            for scope, values in secrets.items():
                if isinstance(values, Mapping) and name in values:
                    found.append((scope, values[name]))
    scopes = sorted(s for s, v in secrets.items() if isinstance(v, Mapping))
    if not found:
        listed = f" (scopes present: {', '.join(scopes)})" if scopes else " (no secrets were given)"
        raise InventoryError(f"Chaos Toolkit secret {name!r} not found{listed}", key=key,
                             fix=f"declare {name} in the experiment's `secrets` block")
    if len(found) > 1:
        raise InventoryError(f"Chaos Toolkit secret {name!r} is in several scopes "
                             f"({', '.join(s for s, _ in found)})", key=key,
                             fix=f"write {{secret: <scope>.{name}}}")
    value = found[0][1]
    if not isinstance(value, str) or not value:
        raise InventoryError(f"Chaos Toolkit secret {name!r} is empty or not a string", key=key,
                             fix="give it a string value")
    return value


# --------------------------------------------------------------------------------------------------------------
# loading

_cache: dict[tuple[str, int, int], Inventory] = {}
_cache_lock = threading.Lock()


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def _inventory_path(path, configuration) -> tuple[Path, str]:
    if path:
        return Path(path).expanduser(), "the path given"
    if configuration and configuration.get("inventory"):
        return Path(str(configuration["inventory"])).expanduser(), "configuration key `inventory`"
    if os.environ.get("DRPOC_INVENTORY"):
        return Path(os.environ["DRPOC_INVENTORY"]).expanduser(), "environment variable DRPOC_INVENTORY"
    return DEFAULT_LAB_INVENTORY, "the lab's default path"


def load_inventory(path: str | os.PathLike | None = None, configuration: Mapping | None = None) -> Inventory:
    """Load and check the inventory.

    The file is, first match wins: `path`, `configuration["inventory"]`, `$DRPOC_INVENTORY`,
    `DEFAULT_LAB_INVENTORY`. Loaded inventories are cached by (path, mtime, size). Raises InventoryError.
    """
    where, origin = _inventory_path(path, configuration)
    where = where.absolute()
    try:
        st = where.stat()
    except FileNotFoundError:
        raise InventoryError(f"no inventory file (from {origin})", path=where, fix=WHERE_TO_LOOK) from None
    except OSError as exc:
        raise InventoryError(f"cannot read the inventory ({exc.strerror})", path=where,
                             fix="make it readable by the user running the drill") from None
    cache_key = (str(where), st.st_mtime_ns, st.st_size)
    with _cache_lock:
        cached = _cache.get(cache_key)
    if cached is not None:
        return cached
    try:
        text = where.read_text(encoding="utf-8")
    except IsADirectoryError:
        raise InventoryError("is a directory, not an inventory file", path=where, fix=WHERE_TO_LOOK) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"cannot read the inventory ({exc})", path=where,
                             fix="make it a readable UTF-8 file") from None
    inventory = parse_inventory(text, where)
    with _cache_lock:
        _cache[cache_key] = inventory
    return inventory


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (a second `aws-vpn:` would silently win otherwise)."""

    def construct_mapping(self, node, deep=False):
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}",
                    key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _expanded_size(root, limit: int = MAX_EXPANDED_NODES) -> int:
    """How many nodes the document has once its aliases are expanded, computed without expanding them (each
    distinct node once, memoised): linear in the file, whatever the aliases multiply to. Stops counting past
    ``limit``."""
    sizes: dict[int, int] = {}
    visiting: set[int] = set()
    # Iterative post-order: an alias bomb is also deep enough to exhaust recursion in a naive walk.
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        if not done:
            if id(node) in visiting:  # an alias to an enclosing anchor: the expansion is infinite
                return limit + 1
            visiting.add(id(node))
        children = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        if done or not children:
            sizes[id(node)] = min(limit + 1, 1 + sum(sizes.get(id(c), 0) for c in children))
            visiting.discard(id(node))
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes.get(id(root), 0)


def _lines(node, prefix: str = "", out: dict | None = None, seen: set | None = None) -> dict[str, int]:
    """Key path → 1-based line, from a composed YAML node tree. An aliased node is walked once (at its anchor):
    its lines are where it is written, and an alias bomb cannot make this walk explode."""
    out = {} if out is None else out
    seen = set() if seen is None else seen
    if id(node) in seen:
        return out
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            out.setdefault(path, key_node.start_mark.line + 1)
            _lines(value_node, path, out, seen)
    return out


def parse_inventory(text: str, path: str | os.PathLike = "<inventory>") -> Inventory:
    """Parse and check inventory YAML `text` (pure; `path` is for messages and relative paths)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is not None and _expanded_size(node) > MAX_EXPANDED_NODES:
            raise InventoryError(f"refused: its YAML aliases expand to more than {MAX_EXPANDED_NODES} nodes (an "
                                 "alias bomb?); an inventory needs a few hundred", path=path,
                                 fix="write the entries out, or use anchors and aliases only for small repeated "
                                     "blocks")
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context
        fix = ("keep one of the two entries" if "duplicate key" in str(problem)
               else "fix the YAML syntax at that line or just before it")
        raise InventoryError(f"not valid YAML: {problem}", path=path, line=line, fix=fix) from None
    except yaml.YAMLError as exc:
        raise InventoryError(f"not valid YAML: {exc}", path=path, fix="fix the YAML syntax") from None
    finally:
        loader.dispose()
    return _Checker(Path(path), _lines(node) if node is not None else {}).build(data)


_TOP_KEYS = {"version", "name", "ssh_defaults", "hosts", "mysql_defaults", "sites", "drill"}
_SSH_KEYS = {"user", "sudo", "key_file", "known_hosts", "connect_timeout", "command_timeout", "jump"}
_HOST_KEYS = _SSH_KEYS | {"address", "port"}
_MYSQL_DEFAULT_KEYS = {"user", "password", "database", "connect_timeout", "read_timeout", "write_timeout", "port"}
_MYSQL_KEYS = _MYSQL_DEFAULT_KEYS | {"address", "via"}
_GATEWAY_KEYS = {"host", "connection", "local_subnet", "remote_subnet"}
_DATABASE_KEYS = {"role", "host", "mysql"}
_DRILL_KEYS = {"connection", "fault_site", "peer_site"}
_MISSING = object()


class _Checker:
    def __init__(self, path: Path, lines: dict[str, int]):
        self.path = path
        self.lines = lines

    def fail(self, key: str, problem: str, fix: str | None = None):
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

    def string(self, value, key: str, required: bool = True) -> str | None:
        if value is None or value is _MISSING:
            if required:
                self.fail(key, "missing", f"set `{key.rsplit('.', 1)[-1]}`")
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"must be a non-empty string, not {_show(value, key)}",
                      "quote it if YAML read it as something else")
        return value.strip()

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
        return Inventory(path=self.path, name=name, hosts=hosts, sites=sites, drill=drill)

    def build_hosts(self, data) -> dict[str, SshHost]:
        defaults = self.mapping(data.get("ssh_defaults"), "ssh_defaults", _SSH_KEYS - {"jump"}, required=False)
        raw = self.mapping(data.get("hosts", _MISSING), "hosts")
        if not raw:
            self.fail("hosts", "no hosts", "list every SSH endpoint under `hosts`")
        hosts: dict[str, SshHost] = {}
        for name, entry in raw.items():
            key = f"hosts.{name}"
            entry = self.mapping(entry, key, _HOST_KEYS)

            def pick(k):
                if k in entry:
                    return entry[k], f"{key}.{k}"
                return defaults.get(k, _MISSING), f"ssh_defaults.{k}"

            user, ukey = pick("user")
            if user is _MISSING:
                self.fail(f"{key}.user", "no login user", "set `user` in ssh_defaults or on the host")
            sudo, skey = pick("sudo")
            key_file, kkey = pick("key_file")
            known_hosts, hkey = pick("known_hosts")
            connect_timeout, ckey = pick("connect_timeout")
            command_timeout, tkey = pick("command_timeout")
            hosts[name] = SshHost(
                name=name,
                address=self.string(entry.get("address", _MISSING), f"{key}.address"),
                port=self.port(entry.get("port"), f"{key}.port", default=22),
                user=self.string(user, ukey),
                sudo=self.boolean(sudo, skey, True),
                key_file=self.file_path(key_file, kkey) if key_file is not _MISSING else None,
                known_hosts=self.file_path(known_hosts, hkey) if known_hosts is not _MISSING else None,
                connect_timeout=self.seconds(connect_timeout, ckey, 5.0),
                command_timeout=self.seconds(command_timeout, tkey, 30.0),
                jump=self.string(entry.get("jump"), f"{key}.jump", required=False),
            )
        for host in hosts.values():
            if host.jump is None:
                continue
            self.known_host(host.jump, f"hosts.{host.name}.jump", hosts)
            seen = [host.name]
            hop = host.jump
            while hop is not None:
                if hop in seen:
                    self.fail(f"hosts.{host.name}.jump", f"jump hosts loop: {' → '.join(seen + [hop])}",
                              "make the chain end at a host without `jump`")
                seen.append(hop)
                hop = hosts[hop].jump
        resolved: dict[str, SshHost] = {}

        def resolve(name: str) -> SshHost:
            if name not in resolved:
                host = hosts[name]
                resolved[name] = replace(host, jump_host=resolve(host.jump)) if host.jump else host
            return resolved[name]

        return {name: resolve(name) for name in hosts}

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
            entry = self.mapping(entry, key, {"gateway", "database"})
            gw = self.mapping(entry.get("gateway", _MISSING), f"{key}.gateway", _GATEWAY_KEYS)
            gateway = Gateway(
                site=name,
                host=self.known_host(gw.get("host", _MISSING), f"{key}.gateway.host", hosts),
                connection=self.string(gw.get("connection", _MISSING), f"{key}.gateway.connection"),
                local_subnet=self.subnet(gw.get("local_subnet", _MISSING), f"{key}.gateway.local_subnet"),
                remote_subnet=self.subnet(gw.get("remote_subnet", _MISSING), f"{key}.gateway.remote_subnet"),
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

        def pick(k):
            if k in mysql:
                return mysql[k], f"{key}.mysql.{k}"
            return defaults.get(k, _MISSING), f"mysql_defaults.{k}"

        user, ukey = pick("user")
        if user is _MISSING:
            self.fail(f"{key}.mysql.user", "no MySQL user", "set `user` in mysql_defaults or in the mysql block")
        password, pkey = pick("password")
        if password is _MISSING:
            self.fail(f"{key}.mysql.password", "no password reference",
                      "set password: {file: PATH}, {env: NAME} or {secret: NAME} in mysql_defaults or the mysql block")
        database, dkey = pick("database")
        port, portkey = pick("port")
        via = mysql.get("via")
        return MysqlEndpoint(
            site=site,
            role=role,
            host=self.known_host(db.get("host", _MISSING), f"{key}.host", hosts),
            address=self.string(mysql.get("address", _MISSING), f"{key}.mysql.address"),
            port=self.port(port, portkey, default=3306),
            user=self.string(user, ukey),
            password_ref=self.password_ref(password, pkey),
            database=self.string(database, dkey, required=False),
            connect_timeout=self.seconds(*pick("connect_timeout"), 5.0),
            via=self.known_host(via, f"{key}.mysql.via", hosts) if via is not None else None,
            read_timeout=self.seconds(*pick("read_timeout"), 30.0),
            write_timeout=self.seconds(*pick("write_timeout"), 30.0),
        )

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
        connection = self.string(drill.get("connection"), "drill.connection", required=False) \
            or sites[fault].gateway.connection
        return DrillTarget(connection=connection, fault_site=fault, peer_site=peer)
