"""Parse strongSwan status output into plain data.

Three texts are understood, all as printed by strongSwan itself:

* ``ipsec statusall`` (and the shorter ``ipsec status``), the stroke interface's report;
* ``swanctl --list-sas``, the vici interface's report;
* what ``ipsec up`` / ``ipsec down`` print while they work (informative only).

Everything here is pure: text in, dataclasses out; no sockets, no subprocesses. The formats
follow strongSwan's own printers (``stroke_list.c`` for statusall, ``swanctl/commands/list_sas.c``
for swanctl), checked against recorded outputs of strongSwan 5.2 to 5.9 in ``tests/fixtures``.

A parser that cannot read its input raises :class:`VpnStatusParseError`; it never answers
"down" for text it did not understand, because a drill that mistakes a broken probe for a
broken tunnel reports a false outage.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "VpnStatusParseError",
    "ChildSa",
    "IkeSa",
    "ChildConfig",
    "Connection",
    "VpnStatus",
    "parse_ipsec_statusall",
    "parse_swanctl_list_sas",
    "parse_swanctl_list_conns",
    "parse_ipsec_up_output",
    "normalize_selectors",
]

# strongSwan's IKE_SA states (ike_sa.h) and CHILD_SA states (child_sa.h, 5.x and 6.x).
IKE_STATES = frozenset(
    {"CREATED", "CONNECTING", "ESTABLISHED", "PASSIVE", "REKEYING", "REKEYED", "DELETING", "DESTROYING"}
)
CHILD_STATES = frozenset(
    {
        "CREATED", "ROUTED", "INSTALLING", "INSTALLED", "UPDATING", "REKEYING", "REKEYED",
        "RETRYING", "DELETING", "DELETED", "DESTROYING",
    }
)
# An IKE_SA being rekeyed keeps its CHILD_SAs and keeps carrying traffic; so does a CHILD_SA
# being rekeyed or updated (MOBIKE). Treating them as down would report an outage at every rekey.
_IKE_UP_STATES = frozenset({"ESTABLISHED", "REKEYING"})
_IKE_CONNECTING_STATES = frozenset({"CREATED", "CONNECTING", "PASSIVE"})
_CHILD_CARRYING_STATES = frozenset({"INSTALLED", "REKEYING", "UPDATING"})

_TIME_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


class VpnStatusParseError(ValueError):
    """The text is not strongSwan status output this module understands.

    ``line_no`` (1-based) and ``line`` point at the offending line when there is one;
    ``hint`` says what to check next. ``str(error)`` carries all three.
    """

    def __init__(self, message: str, *, line_no: int | None = None, line: str | None = None,
                 hint: str | None = None) -> None:
        self.reason = message
        self.line_no = line_no
        self.line = line
        self.hint = hint
        text = message if line_no is None else f"line {line_no}: {message}"
        if line is not None:
            text += f": {line!r}"
        if hint:
            text += f". Hint: {hint}"
        super().__init__(text)


@dataclass
class ChildSa:
    """One CHILD_SA (IPsec SA pair) as strongSwan reports it.

    ``encapsulation`` is ``"udp"`` for ESP in UDP (NAT-T, ``forceencaps``, kernel-libipsec),
    ``"esp"``/``"ah"`` for the plain protocol, ``None`` when the line shows no SPIs
    (REKEYED, ROUTED...). ``bytes_*`` are ``None`` when not printed; ``packets_*`` are ``None``
    when strongSwan omitted the count (statusall prints it only once the SA has been used).
    ``rekey`` and ``expires`` keep strongSwan's wording (``"in 45 minutes"``, ``"disabled"``).
    """

    name: str
    unique_id: int
    state: str
    mode: str | None = None
    encapsulation: str | None = None
    protocol: str | None = None
    spi_in: str | None = None
    spi_out: str | None = None
    reqid: int | None = None
    local_ts: list[str] = field(default_factory=list)
    remote_ts: list[str] = field(default_factory=list)
    bytes_in: int | None = None
    bytes_out: int | None = None
    packets_in: int | None = None
    packets_out: int | None = None
    proposal: str | None = None
    last_in_seconds_ago: int | None = None
    last_out_seconds_ago: int | None = None
    installed_seconds_ago: int | None = None
    rekey: str | None = None
    expires: str | None = None
    extra: list[str] = field(default_factory=list)


@dataclass
class IkeSa:
    """One IKE_SA and its CHILD_SAs.

    ``established_seconds_ago`` is exact from swanctl; from statusall it is derived from
    strongSwan's rounded wording ("105 minutes" -> 6300) and so is a lower bound.
    ``initiator`` is True when this host initiated the IKE_SA (the ``*`` next to ``_i``).
    """

    name: str
    unique_id: int
    state: str
    version: int | None = None
    local_address: str | None = None
    remote_address: str | None = None
    local_id: str | None = None
    remote_id: str | None = None
    spi_i: str | None = None
    spi_r: str | None = None
    established_seconds_ago: int | None = None
    children: list[ChildSa] = field(default_factory=list)
    local_port: int | None = None
    remote_port: int | None = None
    initiator: bool | None = None
    proposal: str | None = None
    rekey: str | None = None
    remote_eap_identity: str | None = None
    remote_xauth_identity: str | None = None
    local_virtual_ips: list[str] = field(default_factory=list)
    remote_virtual_ips: list[str] = field(default_factory=list)
    tasks_queued: list[str] = field(default_factory=list)
    tasks_active: list[str] = field(default_factory=list)
    tasks_passive: list[str] = field(default_factory=list)


@dataclass
class ChildConfig:
    """A configured child (``child:`` line of statusall, or a shunt policy)."""

    name: str
    local_ts: list[str]
    remote_ts: list[str]
    mode: str
    dpd_action: str | None = None


@dataclass
class Connection:
    """A configured connection from the ``Connections:`` section of statusall.

    ``version`` is None for ``IKEv1/2`` (either). ``local_ts``/``remote_ts``/``mode`` repeat the
    first ``child:`` line; ``children`` lists them all (a conn can carry several).
    ``dpd_delay_seconds`` is None when DPD is off; ``dpd_action`` comes from the child line
    (strongSwan shows ``dpdaction=restart`` as ``start``).
    """

    name: str
    local_address: str
    remote_address: str
    version: int | None
    local_ts: list[str] = field(default_factory=list)
    remote_ts: list[str] = field(default_factory=list)
    mode: str | None = None
    dpd_delay_seconds: int | None = None
    dpd_action: str | None = None
    aggressive: bool = False
    local_id: str | None = None
    remote_id: str | None = None
    local_auth: str | None = None
    remote_auth: str | None = None
    children: list[ChildConfig] = field(default_factory=list)


@dataclass
class VpnStatus:
    """What one status command reported.

    ``connections``, ``listening_addresses``, ``routed`` and ``shunts`` come from statusall
    only; ``up_count``/``connecting_count`` from the ``Security Associations (N up, M
    connecting)`` line. ``ignored_lines`` lists lines outside the SA section that were not
    recognised (kept for evidence; they never influence a state).
    """

    source: str
    daemon_version: str | None = None
    uptime: str | None = None
    up_count: int | None = None
    connecting_count: int | None = None
    connections: list[Connection] = field(default_factory=list)
    ike_sas: list[IkeSa] = field(default_factory=list)
    listening_addresses: list[str] = field(default_factory=list)
    routed: list[ChildSa] = field(default_factory=list)
    shunts: list[ChildConfig] = field(default_factory=list)
    ignored_lines: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return a plain, JSON-serialisable dict (nested dataclasses become dicts)."""
        return dataclasses.asdict(self)

    def sas_for(self, connection_name: str) -> list[IkeSa]:
        """IKE_SAs of a connection: those named after it, or carrying a CHILD_SA named after it."""
        return [
            sa for sa in self.ike_sas
            if sa.name == connection_name or any(c.name == connection_name for c in sa.children)
        ]

    def tunnel_state(self, connection_name: str, local_ts: str | Iterable[str] | None = None,
                     remote_ts: str | Iterable[str] | None = None, child_name: str | None = None) -> str:
        """Classify a connection as ``"up"``, ``"connecting"`` or ``"down"``.

        * ``up``: an IKE_SA ESTABLISHED (or REKEYING) with a CHILD_SA INSTALLED (or REKEYING /
          UPDATING) whose selectors equal ``local_ts``/``remote_ts`` when these are given
          (compared as sets, normalised with :func:`normalize_selectors`);
        * ``connecting``: an IKE_SA CREATED/CONNECTING/PASSIVE, or an established one without
          such a CHILD_SA (including one whose selectors differ from those expected);
        * ``down``: no IKE_SA, or only ones on their way out (REKEYED, DELETING, DESTROYING).

        Selectors may be given as a list or a space-separated string. With ``child_name`` (swanctl.conf
        names its children apart from the connection), only CHILD_SAs of that name carry the tunnel.
        """
        want_local = normalize_selectors(local_ts) if local_ts is not None else None
        want_remote = normalize_selectors(remote_ts) if remote_ts is not None else None
        connecting = False
        for sa in self.sas_for(connection_name):
            if sa.state in _IKE_CONNECTING_STATES:
                connecting = True
                continue
            if sa.state not in _IKE_UP_STATES:
                continue
            if child_name is not None:
                children = [c for c in sa.children if c.name == child_name]
            else:
                children = sa.children if sa.name == connection_name else [
                    c for c in sa.children if c.name == connection_name]
            for child in children:
                if child.state not in _CHILD_CARRYING_STATES:
                    continue
                if want_local is not None and normalize_selectors(child.local_ts) != want_local:
                    continue
                if want_remote is not None and normalize_selectors(child.remote_ts) != want_remote:
                    continue
                return "up"
            connecting = True
        return "connecting" if connecting else "down"


def normalize_selectors(selectors: str | Iterable[str] | None) -> frozenset[str]:
    """Normalise traffic selectors for comparison.

    ``"10.20.0.1"`` becomes ``"10.20.0.1/32"``, ``"10.20.0.5/16"`` becomes ``"10.20.0.0/16"``,
    IPv6 is compressed; a protocol/port suffix (``[udp/l2tp]``) is kept; words such as
    ``dynamic`` are kept as they are. A string is split on whitespace.
    """
    if selectors is None:
        return frozenset()
    items = selectors.split() if isinstance(selectors, str) else list(selectors)
    out = set()
    for item in items:
        item = item.strip()
        if not item:
            continue
        net, sep, suffix = item.partition("[")
        try:
            net = str(ipaddress.ip_network(net, strict=False))
        except ValueError:
            pass
        out.add(net + sep + suffix)
    return frozenset(out)


# --------------------------------------------------------------------------------------------
# ipsec statusall / ipsec status
# --------------------------------------------------------------------------------------------

_HEADER_RE = re.compile(r"^Status of IKE charon daemon \((?:strong|weak)Swan (?P<version>[^,)\s]+)")
_UPTIME_RE = re.compile(r"^\s+uptime: (?P<uptime>.+?), since ")
_SA_HEADER_RE = re.compile(r"^Security Associations \((?P<up>\d+) up, (?P<connecting>\d+) connecting\):\s*$")
_SECTION_NAMES = {
    "Virtual IP pools (size/online/offline):": "pools",
    "Listening IP addresses:": "addresses",
    "Connections:": "connections",
    "Shunted Connections:": "shunts",
    "Routed Connections:": "routed",
}
_CONN_RE = re.compile(
    r"^\s*(?P<name>\S.*?):  (?P<local>\S+)\.\.\.(?P<remote>\S+)  IKEv(?P<version>1/2|[12])"
    r"(?P<aggressive> Aggressive)?(?:, dpddelay=(?P<dpd>\d+)s)?\s*$"
)
_CONN_AUTH_RE = re.compile(
    r"^\s*(?P<name>\S.*?):   (?P<side>local|remote):\s+(?:\[(?P<id>.*)\]\s+)?uses (?P<auth>.+?)\s*$"
)
_CONN_CHILD_RE = re.compile(
    r"^\s*(?P<name>\S.*?):   child:  (?P<local>.*?) === (?P<remote>.*?) (?P<mode>[A-Z_]+)"
    r"(?:, dpdaction=(?P<dpd>\w+))?\s*$"
)
_SHUNT_RE = re.compile(r"^\s*(?P<name>\S.*?):  (?P<local>.*?) === (?P<remote>.*?) (?P<mode>[A-Z_]+)\s*$")
_IKE_RE = re.compile(
    r"^\s*(?P<name>\S.*?)\[(?P<id>\d+)\]: (?P<state>[A-Z_]+)(?: (?P<ago>\d+ [a-z]+) ago)?, (?P<endpoints>.+?)\s*$"
)
_ENDPOINTS_RE = re.compile(
    r"^(?P<laddr>[^\[\]]+?)(?:\[(?P<lport>\d+)\])?\[(?P<lid>.*?)\]\.\.\."
    r"(?P<raddr>[^\[\]]+?)(?:\[(?P<rport>\d+)\])?\[(?P<rid>.*)\]$"
)
_IKE_DETAIL_RE = re.compile(r"^\s*(?P<name>\S.*?)\[(?P<id>\d+)\]: (?P<detail>.*?)\s*$")
_SPIS_RE = re.compile(
    r"^IKEv(?P<version>[12]) SPIs: (?P<spi_i>[0-9a-f]{16})_i(?P<istar>\*?) "
    r"(?P<spi_r>[0-9a-f]{16})_r(?P<rstar>\*?)(?:, (?P<rekey>.*))?$"
)
_TASKS_RE = re.compile(r"^Tasks (?P<queue>queued|active|passive): ?(?P<tasks>.*)$")
_REMOTE_IDENTITY_RE = re.compile(r"^Remote (?P<kind>EAP|XAuth) identity: (?P<identity>.*)$")
_CHILD_STATE_RE = re.compile(
    r"^\s*(?P<name>\S.*?)\{(?P<id>\d+)\}:  (?P<state>[A-Z_]+), (?P<mode>[A-Z]+?)(?:_PROXY)?"
    r"(?P<rest>(?:, .*?)?)\s*$"
)
_CHILD_USAGE_RE = re.compile(
    r"^\s*(?P<name>\S.*?)\{(?P<id>\d+)\}:  (?P<proposal>[^,]*), "
    r"(?P<bin>\d+) bytes_i(?: \((?P<pin>\d+) pkts?, (?P<ain>\d+)s ago\))?, "
    r"(?P<bout>\d+) bytes_o(?: \((?P<pout>\d+) pkts?, (?P<aout>\d+)s ago\))?, "
    r"rekeying (?P<rekey>.+?)\s*$"
)
_CHILD_TS_RE = re.compile(r"^\s*(?P<name>\S.*?)\{(?P<id>\d+)\}:   (?P<local>.*?) === (?P<remote>.*?)\s*$")
_SPIS_PART_RE = re.compile(
    r"^(?P<protocol>ESP|AH)(?P<udp> in UDP)? SPIs: (?P<spi_in>[0-9a-f]{8})_i (?P<spi_out>[0-9a-f]{8})_o$"
)

_NOT_RUNNING_HINT = (
    "the charon daemon is not running or its control socket is not reachable from here "
    "(is this the right host / network and mount namespace? try `ipsec status` by hand)"
)


def _seconds_from_words(text: str | None) -> int | None:
    """'105 minutes' -> 6300 (strongSwan rounds down to the printed unit)."""
    if not text:
        return None
    number, unit = text.split()
    return int(number) * _TIME_UNITS[unit.rstrip("s")]


def _split_ts(text: str) -> list[str]:
    return text.split()


def _int_or_none(value: str | None) -> int | None:
    return None if value is None else int(value)


class _StatusallParser:
    """Line-by-line reader of stroke's status report; one instance per text."""

    def __init__(self, text: str) -> None:
        self.lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self.status = VpnStatus(source="statusall")
        self.section: str | None = None
        self.saw_sa_header = False
        self.saw_none = False
        self.ike: IkeSa | None = None
        self.child: ChildSa | None = None
        self.conn: Connection | None = None

    def fail(self, no: int, line: str, message: str, hint: str | None = None) -> VpnStatusParseError:
        return VpnStatusParseError(message, line_no=no, line=line, hint=hint)

    def parse(self) -> VpnStatus:
        for no, line in enumerate(self.lines, start=1):
            if not line.strip():
                continue
            if self._section_change(line):
                continue
            if self.section == "sas":
                self._sa_line(no, line)
            elif self.section == "routed":
                self._routed_line(no, line)
            elif self.section == "connections":
                self._connection_line(line)
            elif self.section == "shunts":
                m = _SHUNT_RE.match(line)
                if m:
                    self.status.shunts.append(ChildConfig(
                        m["name"], _split_ts(m["local"]), _split_ts(m["remote"]), m["mode"]))
                else:
                    self.status.ignored_lines.append(line)
            elif self.section == "addresses" and line.startswith("  "):
                self.status.listening_addresses.append(line.strip())
            elif self.section == "header":
                m = _UPTIME_RE.match(line)
                if m:
                    self.status.uptime = m["uptime"]
                elif not line.startswith("  "):
                    self.status.ignored_lines.append(line)
            elif self.section == "pools":
                pass
            else:
                self.status.ignored_lines.append(line)
        if not self.saw_sa_header:
            raise self._missing_sa_header()
        return self.status

    def _section_change(self, line: str) -> bool:
        m = _HEADER_RE.match(line)
        if m:
            self.status.daemon_version = m["version"]
            self.section = "header"
            return True
        m = _SA_HEADER_RE.match(line)
        if m:
            self.status.up_count = int(m["up"])
            self.status.connecting_count = int(m["connecting"])
            self.saw_sa_header = True
            self.section = "sas"
            return True
        name = _SECTION_NAMES.get(line.rstrip())
        if name and self.section != "sas":
            self.section = name
            return True
        return False

    def _missing_sa_header(self) -> VpnStatusParseError:
        text = "\n".join(self.lines).strip()
        if not text:
            return VpnStatusParseError(
                "empty output; `ipsec statusall` always prints a 'Security Associations' line",
                hint=_NOT_RUNNING_HINT + "; `ipsec statusall` prints nothing and exits 3 when it cannot "
                "reach charon (for example under `ip netns exec` without the host's mount namespace)")
        first = next(line for line in self.lines if line.strip())
        hint = "pass the output of `ipsec statusall` or `ipsec status`"
        if "charon.ctl" in text or "connecting to" in text or "failed" in text:
            hint = _NOT_RUNNING_HINT
        return VpnStatusParseError(
            "no 'Security Associations (N up, M connecting):' line; this is not ipsec status output",
            line_no=self.lines.index(first) + 1, line=first, hint=hint)

    def _connection_line(self, line: str) -> None:
        m = _CONN_RE.match(line)
        if m:
            version = None if m["version"] == "1/2" else int(m["version"])
            self.conn = Connection(
                name=m["name"], local_address=m["local"], remote_address=m["remote"], version=version,
                dpd_delay_seconds=_int_or_none(m["dpd"]), aggressive=bool(m["aggressive"]))
            self.status.connections.append(self.conn)
            return
        m = _CONN_CHILD_RE.match(line)
        if m and self.conn is not None:
            cfg = ChildConfig(m["name"], _split_ts(m["local"]), _split_ts(m["remote"]), m["mode"], m["dpd"])
            self.conn.children.append(cfg)
            if len(self.conn.children) == 1:
                self.conn.local_ts, self.conn.remote_ts = cfg.local_ts, cfg.remote_ts
                self.conn.mode, self.conn.dpd_action = cfg.mode, cfg.dpd_action
            return
        m = _CONN_AUTH_RE.match(line)
        if m and self.conn is not None and m["name"] == self.conn.name:
            # A connection may list several auth rounds; the first one names the peer.
            if m["side"] == "local" and self.conn.local_auth is None:
                self.conn.local_id, self.conn.local_auth = m["id"], m["auth"]
            elif m["side"] == "remote" and self.conn.remote_auth is None:
                self.conn.remote_id, self.conn.remote_auth = m["id"], m["auth"]
            return
        # ca:/cert:/ocsp:/crl:/group: lines and whatever later versions add: tolerated.
        if not re.match(r"^\s*\S.*?:    \w[\w-]*:", line):
            self.status.ignored_lines.append(line)

    def _routed_line(self, no: int, line: str) -> None:
        m = _CHILD_STATE_RE.match(line)
        if m:
            self.child = self._new_child(no, line, m)
            self.status.routed.append(self.child)
            return
        m = _CHILD_TS_RE.match(line)
        if m and self.child is not None:
            self._child_ts(no, line, m)
            return
        self.status.ignored_lines.append(line)

    def _sa_line(self, no: int, line: str) -> None:
        stripped = line.strip()
        if stripped in ("none", "no match"):
            if self.status.ike_sas:
                raise self.fail(no, line, f"'{stripped}' after IKE_SAs were listed")
            self.saw_none = True
            return
        if self.saw_none:
            raise self.fail(no, line, "SA line after 'none'", "the output looks like two reports pasted together")
        m = _CHILD_TS_RE.match(line)
        if m:
            self._child_ts(no, line, m)
            return
        m = _CHILD_USAGE_RE.match(line)
        if m:
            self._child_usage(no, line, m)
            return
        m = _CHILD_STATE_RE.match(line)
        if m:
            if self.ike is None:
                raise self.fail(no, line, "CHILD_SA listed before any IKE_SA")
            self.child = self._new_child(no, line, m)
            self.ike.children.append(self.child)
            return
        m = _IKE_RE.match(line)
        if m:
            self._new_ike(no, line, m)
            return
        m = _IKE_DETAIL_RE.match(line)
        if m:
            self._ike_detail(no, line, m)
            return
        raise self.fail(
            no, line, "unrecognised line in the Security Associations section",
            "expected 'name[N]: STATE ...', 'name[N]: <detail>', 'name{N}: ...' or 'none'; "
            "refusing to guess a tunnel state from it")

    def _new_ike(self, no: int, line: str, m: re.Match[str]) -> None:
        if m["state"] not in IKE_STATES:
            raise self.fail(no, line, f"unknown IKE_SA state {m['state']!r}",
                            f"known states: {', '.join(sorted(IKE_STATES))}")
        ends = _ENDPOINTS_RE.match(m["endpoints"])
        if not ends:
            raise self.fail(no, line, "cannot read the 'local[id]...remote[id]' endpoints of the IKE_SA")
        self.ike = IkeSa(
            name=m["name"], unique_id=int(m["id"]), state=m["state"],
            local_address=ends["laddr"], remote_address=ends["raddr"],
            local_port=_int_or_none(ends["lport"]), remote_port=_int_or_none(ends["rport"]),
            local_id=ends["lid"], remote_id=ends["rid"],
            established_seconds_ago=_seconds_from_words(m["ago"]))
        self.child = None
        self.status.ike_sas.append(self.ike)

    def _ike_detail(self, no: int, line: str, m: re.Match[str]) -> None:
        ike = self.ike
        if ike is None or ike.name != m["name"] or ike.unique_id != int(m["id"]):
            raise self.fail(no, line, "IKE_SA detail line without its IKE_SA state line just before",
                            "the output may be truncated or edited")
        detail = m["detail"]
        if (d := _SPIS_RE.match(detail)) is not None:
            ike.version = int(d["version"])
            ike.spi_i, ike.spi_r = d["spi_i"], d["spi_r"]
            ike.initiator = bool(d["istar"])
            ike.rekey = d["rekey"]
        elif detail.startswith("IKE proposal: "):
            ike.proposal = detail[len("IKE proposal: "):]
        elif (d := _TASKS_RE.match(detail)) is not None:
            getattr(ike, f"tasks_{d['queue']}").extend(d["tasks"].split())
        elif (d := _REMOTE_IDENTITY_RE.match(detail)) is not None:
            if d["kind"] == "EAP":
                ike.remote_eap_identity = d["identity"]
            else:
                ike.remote_xauth_identity = d["identity"]
        else:
            raise self.fail(no, line, "unrecognised IKE_SA detail line",
                            "expected SPIs, IKE proposal, Tasks or Remote identity")

    def _new_child(self, no: int, line: str, m: re.Match[str]) -> ChildSa:
        if m["state"] not in CHILD_STATES:
            raise self.fail(no, line, f"unknown CHILD_SA state {m['state']!r}",
                            f"known states: {', '.join(sorted(CHILD_STATES))}")
        child = ChildSa(name=m["name"], unique_id=int(m["id"]), state=m["state"], mode=m["mode"])
        for part in filter(None, m["rest"].split(", ")):
            if part.startswith("reqid "):
                child.reqid = int(part[len("reqid "):])
            elif (s := _SPIS_PART_RE.match(part)) is not None:
                child.protocol = s["protocol"]
                child.encapsulation = "udp" if s["udp"] else s["protocol"].lower()
                child.spi_in, child.spi_out = s["spi_in"], s["spi_out"]
            elif part.startswith("expires "):
                child.expires = part[len("expires "):]
            else:
                child.extra.append(part)  # e.g. "IPCOMP CPIs: ..." - kept, never read as a state
        return child

    def _current_child(self, no: int, line: str, m: re.Match[str]) -> ChildSa:
        child = self.child
        if child is None or child.name != m["name"] or child.unique_id != int(m["id"]):
            raise self.fail(no, line, "CHILD_SA detail line without its CHILD_SA state line just before",
                            "the output may be truncated or edited")
        return child

    def _child_usage(self, no: int, line: str, m: re.Match[str]) -> None:
        child = self._current_child(no, line, m)
        child.proposal = m["proposal"] or None
        child.bytes_in, child.bytes_out = int(m["bin"]), int(m["bout"])
        # strongSwan prints packet counts only once the SA has been used in that direction.
        child.packets_in = int(m["pin"]) if m["pin"] else (0 if child.bytes_in == 0 else None)
        child.packets_out = int(m["pout"]) if m["pout"] else (0 if child.bytes_out == 0 else None)
        child.last_in_seconds_ago = _int_or_none(m["ain"])
        child.last_out_seconds_ago = _int_or_none(m["aout"])
        child.rekey = m["rekey"]

    def _child_ts(self, no: int, line: str, m: re.Match[str]) -> None:
        child = self._current_child(no, line, m)
        child.local_ts, child.remote_ts = _split_ts(m["local"]), _split_ts(m["remote"])


def parse_ipsec_statusall(text: str) -> VpnStatus:
    """Parse the output of ``ipsec statusall`` (``ipsec status`` works too).

    Returns a :class:`VpnStatus` with ``source="statusall"``; "no SA" is a valid answer
    (``Security Associations (0 up, 0 connecting):`` then ``none``).

    Raises :class:`VpnStatusParseError` for empty output, error messages (charon not running),
    anything without the ``Security Associations`` line, and any line inside that section
    that is not an IKE_SA, CHILD_SA or ``none`` line. Unknown lines elsewhere (extra sections,
    certificate lines, warnings) are tolerated and listed in ``ignored_lines``.
    """
    return _StatusallParser(text).parse()


# --------------------------------------------------------------------------------------------
# swanctl --list-sas
# --------------------------------------------------------------------------------------------

_SW_IKE_RE = re.compile(
    r"^(?P<name>\S.*?): #(?P<id>\d+), (?P<state>[A-Z_]+), IKEv(?P<version>\d)(?:, (?P<spis>.+?))?\s*$"
)
_SW_SPIS_RE = re.compile(r"^(?P<spi_i>[0-9a-f]+)_i(?P<istar>\*?) (?P<spi_r>[0-9a-f]+)_r(?P<rstar>\*?)$")
_SW_SPIS_LEGACY_RE = re.compile(r"^(?P<spi_i>[0-9a-f]+):(?P<spi_r>[0-9a-f]+)$")  # swanctl of 5.2/5.3
_SW_ENDPOINT_RE = re.compile(
    r"^  (?P<side>local|remote) +'(?P<id>.*)' @ (?P<host>[^\s\[]+)(?:\[(?P<port>\d+)\])?"
    r"(?: EAP: '(?P<eap>[^']*)')?(?: XAuth: '(?P<xauth>[^']*)')?(?: \[(?P<vips>[^\]]*)\])?\s*$"
)
_SW_PROPOSAL_RE = re.compile(r"^  (?P<proposal>[A-Z0-9][A-Za-z0-9_-]*(?:/[A-Za-z0-9_-]+)+)\s*$")
_SW_ESTABLISHED_RE = re.compile(r"^  established (?P<secs>\d+)s ago(?P<rest>(?:, .*)?)\s*$")
_SW_TASKS_RE = re.compile(r"^  (?P<queue>queued|active|passive): +(?P<tasks>.*?)\s*$")
_SW_CHILD_RE = re.compile(
    r"^  (?P<name>\S.*?): #(?P<id>\d+), reqid (?P<reqid>\d+), (?P<state>[A-Z_]+), "
    r"(?P<mode>[A-Z_]+?)(?P<udp>-in-UDP)?, (?P<protocol>[A-Z]+):(?P<proposal>\S*)\s*$"
)
_SW_INSTALLED_RE = re.compile(r"^    installed (?P<secs>\d+)s ago(?P<rest>(?:, .*)?)\s*$")
_SW_TRAFFIC_RE = re.compile(
    r"^    (?P<dir>in|out) +(?P<spi>[0-9a-f]+)(?:/\S+?)?(?: \([^)]*\))?, +(?P<bytes>\d+) bytes, "
    r"+(?P<packets>\d+) packets(?:, +(?P<ago>\d+)s ago)?\s*$"
)
_SW_TS_RE = re.compile(r"^    (?P<side>local|remote) +(?P<ts>.*?)\s*$")
_SW_LABEL_RE = re.compile(r"^    label +(?P<label>.*?)\s*$")
# swanctl prints these on stderr when plugins are missing; callers that merge stderr get them.
_SW_NOISE_RE = re.compile(r"^plugin '[^']+': failed to load")


def _timing_parts(rest: str) -> dict[str, str]:
    """', rekeying in 2544s, expires in 3599s' -> {'rekeying': 'in 2544s', 'expires': 'in 3599s'}."""
    parts = {}
    for part in filter(None, rest.split(", ")):
        word, _, value = part.partition(" ")
        parts[word] = value
    return parts


_SWC_CONN_RE = re.compile(r"^(?P<name>[^\s:][^:]*): IKEv(?:1|2|1/2)\b")
_SWC_CHILD_RE = re.compile(r"^  (?P<name>[^\s:][^:]*): (?:TUNNEL|TRANSPORT|TRANSPORT_PROXY|BEET|PASS|DROP)\b")


def _swanctl_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of a swanctl listing, without blank lines and "plugin '…': failed to load" noise; raises
    VpnStatusParseError when swanctl says it could not reach charon."""
    for no, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), start=1):
        if not line.strip() or _SW_NOISE_RE.match(line):
            continue
        if "connecting to '" in line and "failed" in line or line.startswith("Error: "):
            raise VpnStatusParseError("swanctl could not reach charon", line_no=no, line=line,
                                      hint=_NOT_RUNNING_HINT)
        yield no, line


def parse_swanctl_list_conns(text: str) -> dict[str, list[str]]:
    """The connections ``swanctl --list-conns`` lists: {IKE connection name: [its CHILD config names]}.

    Only the names are read (what the drill needs to refuse a typo before the fault); everything else in the
    listing (addresses, authentication rounds, selectors) is skipped. Raises :class:`VpnStatusParseError` when
    swanctl could not reach charon. Empty output means no connection is loaded.
    """
    conns: dict[str, list[str]] = {}
    current: str | None = None
    for _, line in _swanctl_lines(text):
        if (m := _SWC_CONN_RE.match(line)) is not None:
            current = m["name"]
            conns[current] = []
        elif current is not None and (m := _SWC_CHILD_RE.match(line)) is not None:
            conns[current].append(m["name"])
    return conns


def parse_swanctl_list_sas(text: str) -> VpnStatus:
    """Parse the output of ``swanctl --list-sas`` (default, non-raw format).

    Returns a :class:`VpnStatus` with ``source="swanctl"``. Empty output is valid and means no
    SA (swanctl prints nothing then). ``"plugin '...': failed to load"`` noise is skipped.

    Raises :class:`VpnStatusParseError` on error messages (vici socket unreachable) and on any
    line that is not part of swanctl's SA listing.
    """
    status = VpnStatus(source="swanctl")
    ike: IkeSa | None = None
    child: ChildSa | None = None
    for no, line in _swanctl_lines(text):
        if (m := _SW_IKE_RE.match(line)) is not None:
            if m["state"] not in IKE_STATES:
                raise VpnStatusParseError(f"unknown IKE_SA state {m['state']!r}", line_no=no, line=line)
            ike = IkeSa(name=m["name"], unique_id=int(m["id"]), state=m["state"], version=int(m["version"]))
            spis = m["spis"] or ""
            if (s := _SW_SPIS_RE.match(spis)) is not None:
                ike.spi_i, ike.spi_r, ike.initiator = s["spi_i"], s["spi_r"], bool(s["istar"])
            elif (s := _SW_SPIS_LEGACY_RE.match(spis)) is not None:
                ike.spi_i, ike.spi_r = s["spi_i"], s["spi_r"]
            elif spis:
                raise VpnStatusParseError("cannot read the IKE SPIs", line_no=no, line=line)
            status.ike_sas.append(ike)
            child = None
            continue
        if ike is None:
            raise VpnStatusParseError(
                "not swanctl --list-sas output (expected 'name: #N, STATE, IKEv2, ...' first)",
                line_no=no, line=line, hint="pass the stdout of `swanctl --list-sas`")
        if (m := _SW_CHILD_RE.match(line)) is not None:
            if m["state"] not in CHILD_STATES:
                raise VpnStatusParseError(f"unknown CHILD_SA state {m['state']!r}", line_no=no, line=line)
            child = ChildSa(
                name=m["name"], unique_id=int(m["id"]), state=m["state"], mode=m["mode"],
                encapsulation="udp" if m["udp"] else m["protocol"].lower(), protocol=m["protocol"],
                reqid=int(m["reqid"]), proposal=m["proposal"] or None)
            ike.children.append(child)
            continue
        if line.startswith("    "):
            if child is None:
                raise VpnStatusParseError("CHILD_SA detail line before any CHILD_SA", line_no=no, line=line)
            _swanctl_child_detail(child, no, line)
            continue
        if (m := _SW_ENDPOINT_RE.match(line)) is not None:
            vips = m["vips"].split() if m["vips"] else []
            if m["side"] == "local":
                ike.local_id, ike.local_address = m["id"], m["host"]
                ike.local_port, ike.local_virtual_ips = _int_or_none(m["port"]), vips
            else:
                ike.remote_id, ike.remote_address = m["id"], m["host"]
                ike.remote_port, ike.remote_virtual_ips = _int_or_none(m["port"]), vips
                ike.remote_eap_identity, ike.remote_xauth_identity = m["eap"], m["xauth"]
            continue
        if (m := _SW_ESTABLISHED_RE.match(line)) is not None:
            ike.established_seconds_ago = int(m["secs"])
            timing = _timing_parts(m["rest"])
            ike.rekey = ", ".join(f"{k} {v}" for k, v in timing.items()) or None
            continue
        if (m := _SW_TASKS_RE.match(line)) is not None:
            getattr(ike, f"tasks_{m['queue']}").extend(m["tasks"].split())
            continue
        if (m := _SW_PROPOSAL_RE.match(line)) is not None:
            ike.proposal = m["proposal"]
            continue
        raise VpnStatusParseError("unrecognised line in swanctl --list-sas output", line_no=no, line=line,
                                  hint="refusing to guess a tunnel state from it")
    return status


def _swanctl_child_detail(child: ChildSa, no: int, line: str) -> None:
    if (m := _SW_TRAFFIC_RE.match(line)) is not None:
        if m["dir"] == "in":
            child.spi_in, child.bytes_in, child.packets_in = m["spi"], int(m["bytes"]), int(m["packets"])
            child.last_in_seconds_ago = _int_or_none(m["ago"])
        else:
            child.spi_out, child.bytes_out, child.packets_out = m["spi"], int(m["bytes"]), int(m["packets"])
            child.last_out_seconds_ago = _int_or_none(m["ago"])
    elif (m := _SW_INSTALLED_RE.match(line)) is not None:
        child.installed_seconds_ago = int(m["secs"])
        timing = _timing_parts(m["rest"])
        child.rekey = timing.get("rekeying")
        child.expires = timing.get("expires")
    elif (m := _SW_TS_RE.match(line)) is not None:
        if m["side"] == "local":
            child.local_ts = _split_ts(m["ts"])
        else:
            child.remote_ts = _split_ts(m["ts"])
    elif (m := _SW_LABEL_RE.match(line)) is not None:
        child.extra.append(f"label {m['label']}")
    else:
        raise VpnStatusParseError("unrecognised CHILD_SA line in swanctl --list-sas output",
                                  line_no=no, line=line)


# --------------------------------------------------------------------------------------------
# ipsec up / ipsec down output
# --------------------------------------------------------------------------------------------

# Log prefixes seen around charon messages: Android logcat ("I/charon: "), syslog
# ("Oct 31 21:50:41 host charon[1]: "), thread and group ("10[IKE] "), swanctl ("[IKE] ").
_LOG_PREFIXES = (
    re.compile(r"^[VDIWEF]/[\w.-]+(?:\(\s*\d+\))?: "),
    re.compile(r"^[A-Z][a-z]{2} +\d+ \d\d:\d\d:\d\d (?:\S+ )?[\w./-]+(?:\[\d+\])?: "),
    re.compile(r"^\d+\[[A-Z]{3}\] (?:<[^>]*> )?"),
    re.compile(r"^\[[A-Z]{3}\] "),
)
# stroke's words, then swanctl's (`swanctl --initiate` / `--terminate` end with one of these lines)
_UP_ESTABLISHED_RE = re.compile(r"connection '[^']*' established successfully|initiate completed successfully")
_UP_FAILED_RE = re.compile(
    r"establishing connection '[^']*' failed|establishing (?:IKE|CHILD)_SA failed|initiate failed"
    r"|establishing CHILD_SA '[^']*' failed"
)
_UP_RETRANSMIT_RE = re.compile(r"(?:sending )?retransmit (\d+) of request")
_UP_GIVING_UP_RE = re.compile(r"giving up after (\d+) retransmits")
_UP_CLOSED_RE = re.compile(r"IKE_SA \[\d+\] closed successfully|IKE_SA deleted|terminate completed successfully")


def _strip_log_prefix(line: str) -> str:
    line = line.strip()
    for prefix in _LOG_PREFIXES:
        line = prefix.sub("", line, count=1).strip()
    return line


def parse_ipsec_up_output(text: str) -> dict[str, Any]:
    """Summarise what ``ipsec up`` / ``ipsec down`` (or charon's log of them) printed.

    Informative only: strongSwan's exit codes and messages do not tell whether the tunnel is
    up (``ipsec up`` can print "failed" for a duplicate CHILD_SA while the tunnel is up) -
    callers must judge by a status command. Returns a JSON-serialisable dict::

        {"established": bool,          # "connection '...' established successfully"
         "failed": bool,               # "establishing connection '...' failed", "... IKE_SA failed"
         "duplicate_child": bool,      # "not establishing CHILD_SA ... due to existing duplicate"
         "peer_not_responding": bool,  # "peer not responding" / "giving up after N retransmits"
         "retransmits": int,           # highest "retransmit N of request" seen
         "closed": bool,               # "IKE_SA [N] closed successfully" / "IKE_SA deleted"
         "messages": [str, ...]}       # every non-empty line, log prefixes removed

    Never raises: any text, including empty, gives an answer.
    """
    messages = [m for m in (_strip_log_prefix(line) for line in text.splitlines()) if m]
    retransmits = 0
    for message in messages:
        for pattern in (_UP_RETRANSMIT_RE, _UP_GIVING_UP_RE):
            if (m := pattern.search(message)) is not None:
                retransmits = max(retransmits, int(m.group(1)))
    joined = "\n".join(messages)
    return {
        "established": bool(_UP_ESTABLISHED_RE.search(joined)),
        "failed": bool(_UP_FAILED_RE.search(joined)),
        "duplicate_child": "due to existing duplicate" in joined,
        "peer_not_responding": "peer not responding" in joined or bool(_UP_GIVING_UP_RE.search(joined)),
        "retransmits": retransmits,
        "closed": bool(_UP_CLOSED_RE.search(joined)),
        "messages": messages,
    }
