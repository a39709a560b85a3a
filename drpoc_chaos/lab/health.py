"""Is the lab up and working? Read-only checks, asked the way an operator would: the tunnel's status on each gateway
through the drill's own gateway helper with the lab's control (`ipsec statusall`, or `swanctl --list-sas` in
swanctl mode) and `SHOW REPLICA STATUS` on the replica (parsed by the project's own parsers), the daemons' PIDs,
the WAN counters.

`check` is what `lab up` waits for and what `lab status` shows: healthy means the five namespaces exist, every
daemon runs, the tunnel is up on both gateways and the replica's IO and SQL threads run.
"""
from __future__ import annotations

import json

from ..core.clock import wait_until
from ..replication.status import ReplicaStatusParseError, parse_replica_status_text
from ..services.gateway_helper import SCRIPT_NAME
from ..vpn.status import VpnStatusParseError, parse_ipsec_statusall, parse_swanctl_list_sas
from .context import LabContext, netns_exists
from .system import LabError, pid_alive, run
from .topology import HELPER_DIR, spoke_child


def ipsec_mode(ctx: LabContext) -> str:
    """The running lab's control: ipsec or swanctl (lab.json; ipsec for a lab built before modes existed)."""
    return str(ctx.read_state().get("ipsec_mode") or "ipsec")


def tunnel_state(ctx: LabContext, host: str, mode: str | None = None, connection: str | None = None) -> dict:
    """The tunnel of `connection` (default: the gateway's first; a spoke has one) as `host` reports it."""
    h = ctx.topo.hosts_by_name.get(host)
    site = h.site if h and h.role == "gateway" else None
    if site is None:
        raise ValueError(f"lab host {host} is not a VPN gateway")
    mode = mode or ipsec_mode(ctx)
    r = ctx.exec_in(host, [f"{HELPER_DIR}/{SCRIPT_NAME}", "status", mode], check=False, timeout=10)
    if r.returncode != 0:
        said = [line for line in (r.stderr or r.stdout).splitlines() if not line.startswith("plugin '")]
        return {"state": "unknown", "error": " ".join(said).strip()[:200] or f"exit {r.returncode}"}
    try:
        st = parse_ipsec_statusall(r.stdout) if mode == "ipsec" else parse_swanctl_list_sas(r.stdout)
    except VpnStatusParseError as exc:
        return {"state": "unknown", "error": str(exc)}
    tunnels = ctx.topo.gateways[site]["tunnels"]
    t = next((t for t in tunnels if t["connection"] == connection), tunnels[0])
    state = st.tunnel_state(t["connection"], [t["local"]], [t["remote"]], child_name=spoke_child(t["spoke"], mode))
    sas = (f"{st.up_count} up, {st.connecting_count} connecting" if mode == "ipsec"
           else f"{len(st.ike_sas)} IKE_SA(s)")
    return {"state": state, "sas": sas, "control": mode}


def replica_state(ctx: LabContext, host: str = "onprem-db") -> dict:
    r = ctx.sql(host, "SHOW REPLICA STATUS\\G", check=False, timeout=10, column_names=True)
    if r.returncode != 0:
        return {"io": None, "sql": None, "error": (r.stderr or "").strip()[:200]}
    try:
        st = parse_replica_status_text(r.stdout)
    except ReplicaStatusParseError as exc:
        return {"io": None, "sql": None, "error": str(exc)}
    if st is None:
        return {"io": None, "sql": None, "error": "replication is not configured"}
    t = ctx.sql(host, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema='testdb' "
                      "AND table_name='ping';", check=False, timeout=10)
    return {"io": st.io_running, "sql": st.sql_running, "seconds_behind": st.seconds_behind_source,
            "last_io_errno": st.last_io_errno, "last_io_error": st.last_io_error,
            "source": f"{st.source_host}:{st.source_port}", "gtid_io_pos": st.gtid_io_pos,
            "ping_table": t.stdout.strip() == "1"}


def wan_counters() -> dict:
    """Packets and bytes per counter of the WAN router's nft table (configs.wan_counters_nft)."""
    r = run(["ip", "netns", "exec", "wan", "nft", "-j", "list", "counters", "table", "inet", "drpoc_wan"],
            check=False, timeout=10)
    out = {}
    try:
        for item in json.loads(r.stdout).get("nftables", []):
            c = item.get("counter")
            if c:
                out[c["name"]] = {"packets": c["packets"], "bytes": c["bytes"]}
    except ValueError:
        pass
    return out


def daemon_states(ctx: LabContext) -> dict:
    """daemon@host -> alive, by the PIDs daemons.py recorded."""
    out = {}
    for h in ctx.topo.hosts:
        if h.ssh_port:
            out[f"sshd@{h.name}"] = pid_alive(ctx.read_pid(f"sshd-{h.name}"))
        if h.role == "gateway":
            out[f"charon@{h.name}"] = pid_alive(ctx.read_pid(f"charon-{h.name}"))
        if h.role == "database":
            out[f"mariadbd@{h.name}"] = pid_alive(ctx.read_pid(f"mariadbd-{h.name}"))
    out["publisher@127.0.0.1"] = pid_alive(ctx.read_pid("publish"))
    return out


def check(ctx: LabContext, mode: str | None = None) -> dict:
    problems = []
    hosts = {h: netns_exists(h) for h in ctx.topo.host_names}
    problems += [f"namespace {h} missing" for h, ok in hosts.items() if not ok]
    if not all(hosts.values()):
        return {"healthy": False, "problems": problems, "hosts": hosts, "daemons": {}, "tunnels": {},
                "replica": {}}
    daemons = daemon_states(ctx)
    problems += [f"{d} not running" for d, ok in daemons.items() if not ok]
    mode = mode or ipsec_mode(ctx)
    tunnels = {}
    for g in ctx.topo.gateways.values():
        for t in g["tunnels"]:
            # the seed's lab keys its two tunnels by gateway; a fleet hub's by gateway and connection
            key = g["host"] if len(g["tunnels"]) == 1 else f"{g['host']} {t['connection']}"
            tunnels[key] = tunnel_state(ctx, g["host"], mode, t["connection"])
    problems += [f"tunnel on {h} is {t['state']}" for h, t in tunnels.items() if t["state"] != "up"]
    replicas = {}
    for d in ctx.topo.databases.values():
        if d["role"] != "replica":
            continue
        rep = replica_state(ctx, d["host"]) if daemons.get(f"mariadbd@{d['host']}") else {}
        replicas[d["host"]] = rep
        if rep.get("io") != "Yes" or rep.get("sql") != "Yes":
            name = "replica" if ctx.topo.spokes == 1 else f"replica {d['host']}"
            problems.append(f"{name} IO={rep.get('io')} SQL={rep.get('sql')}")
    out = {"healthy": not problems, "problems": problems, "hosts": hosts, "daemons": daemons,
           "tunnels": tunnels, "replica": replicas.get("onprem-db", {})}
    if ctx.topo.spokes > 1:
        out["replicas"] = replicas
    return out


def wait_healthy(ctx: LabContext, timeout: float, mode: str | None = None) -> None:
    """Until healthy and the replica has received testdb.ping (the source's bootstrap reached it)."""
    healthy, h = wait_until(lambda: check(ctx, mode), timeout, 0.2,
                            done=lambda h: bool(h["healthy"] and all(
                                r.get("ping_table") for r in h.get("replicas", {"_": h["replica"]}).values())))
    if not healthy:
        raise LabError("the lab did not become healthy within {:.0f}s: {}".format(
            timeout, "; ".join(h["problems"]) or "replica has not received testdb.ping"))
    ctx.say("tunnel ESTABLISHED/INSTALLED on every gateway; replica IO and SQL running"
            + (f" on all {ctx.topo.spokes} replicas" if ctx.topo.spokes > 1 else ""))


def status(ctx: LabContext) -> dict:
    """`drpoc lab status`: the health check plus what lab.json recorded, the inventory, the published ports and the
    WAN counters."""
    state = ctx.read_state()
    h = check(ctx)
    return {"up": ctx.paths.lab_json.exists(), "esp_mode": state.get("esp_mode"), "knobs": state.get("knobs"),
            "sites": ctx.topo.spokes,
            "ipsec_mode": state.get("ipsec_mode") or ("ipsec" if state else None),
            "inventory": str(ctx.paths.inventory) if ctx.paths.inventory.exists() else None,
            "published": [{"port": lp, "host": host, "service": "ssh" if tp == 22 else "mysql"}
                          for lp, host, tp in ctx.topo.published_ports()],
            "wan_counters": wan_counters() if h["hosts"].get("wan") else {}, **h}
