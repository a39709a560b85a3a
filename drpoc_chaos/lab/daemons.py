"""Starting the lab's daemons and recording their PIDs: sshd on the four hosts, strongSwan's charon on the two
gateways, mariadbd on the two database hosts, and the 127.0.0.1 publisher in the root namespace.

Every daemon gets a pid file under the run directory (pids/<name>); `lab down` stops them by PID, never by name
(teardown.py). Each daemon runs in its own session with its output appended to <run>/<name>.log, so it outlives the
`drpoc` process that started it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from ..core.clock import wait_until
from .context import LabContext
from .system import LabError, pid_alive, which
from .topology import enter_command


def spawn(ctx: LabContext, host: str, name: str, cmd: list[str]) -> int:
    log = open(ctx.paths.run / f"{name}.log", "ab")
    proc = subprocess.Popen(enter_command(host, ctx.paths) + cmd, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=log, start_new_session=True, close_fds=True)
    log.close()
    ctx.write_pid(name, proc.pid)
    return proc.pid


def start_sshd(ctx: LabContext, host: str) -> None:
    cfg = ctx.paths.host_etc(host) / "sshd_config"
    spawn(ctx, host, f"sshd-{host}", [which("sshd") or "/usr/sbin/sshd", "-D", "-e", "-f", str(cfg)])


def start_strongswan(ctx: LabContext, mode: str = "ipsec") -> None:
    if mode == "swanctl":
        start_charon_swanctl(ctx)
        return
    # AWS answers (auto=add) and must have loaded the conn before on-prem initiates (docs/LAB.md, trap 1):
    # `ipsec start` returns before the config is loaded, so wait for the conn to be listed.
    # the hub first: a fleet's spokes then start in parallel (each gateway's `ipsec start` is its own process)
    gateways = list(ctx.topo.gateways.values())
    _start_stroke(ctx, gateways[:1])
    _start_stroke(ctx, gateways[1:])
    ctx.say("strongSwan charon started on every gateway (AWS answers, on-prem initiates)")


def _start_stroke(ctx: LabContext, gateways: list) -> None:
    for g in gateways:
        ctx.exec_in(g["host"], ["ipsec", "start"], timeout=20)
    for g in gateways:
        host = g["host"]
        conns = [t["connection"] for t in g["tunnels"]]

        def conn_loaded(host: str = host, conns: list = conns) -> bool:  # this gateway, bound now (B023)
            out = ctx.exec_in(host, ["ipsec", "statusall"], check=False, timeout=10).stdout
            return all(f"{c}:" in out for c in conns)

        loaded, _ = wait_until(conn_loaded, 15, 0.05)
        if not loaded:
            raise LabError(f"lab host {host}: charon did not load conn {', '.join(conns)} within 15s; "
                           f"see `drpoc lab exec {host} -- ipsec statusall`")
        # `ipsec start` daemonises charon: its PID is in the host's own /run, copied to our pid file
        pid = _host_pid_file(ctx, host, "/run/charon.pid")
        if pid:
            ctx.write_pid(f"charon-{host}", pid)


def start_charon_swanctl(ctx: LabContext) -> None:
    """strongSwan the way strongSwan 6 gateways run it: charon started directly (no starter, stroke plugin off) and
    the connection loaded over vici with `swanctl --load-all`. AWS loads first (it only answers), then on-prem,
    whose child has start_action = start and initiates as it loads."""
    charon = which("charon", extra=["/usr/lib/ipsec", "/usr/libexec/ipsec"]) or "/usr/lib/ipsec/charon"
    for g in ctx.topo.gateways.values():
        host = g["host"]
        conns = [t["connection"] for t in g["tunnels"]]
        spawn(ctx, host, f"charon-{host}", [charon])

        def vici_up(host: str = host) -> bool:  # this gateway, bound now (B023)
            return ctx.exec_in(host, ["swanctl", "--stats"], check=False, timeout=10).returncode == 0

        if not wait_until(vici_up, 15, 0.05)[0]:
            raise LabError(f"lab host {host}: charon's vici socket did not answer within 15s; see "
                           f"{ctx.paths.run / f'charon-{host}.log'}")
        r = ctx.exec_in(host, ["swanctl", "--load-all"], check=False, timeout=20)
        if r.returncode != 0 or any(f"loaded connection '{c}'" not in r.stdout for c in conns):
            said = [line for line in (r.stdout + r.stderr).splitlines() if not line.startswith("plugin '")]
            raise LabError(f"lab host {host}: `swanctl --load-all` did not load connection {', '.join(conns)}: "
                           + " | ".join(said[-4:]))
    ctx.say("strongSwan charon started on every gateway, swanctl.conf loaded over vici (AWS answers, on-prem "
            "initiates)")


def _host_pid_file(ctx: LabContext, host: str, path: str) -> int | None:
    r = ctx.exec_in(host, ["cat", path], check=False, timeout=5)
    try:
        return int(r.stdout.strip())
    except ValueError:
        return None


def start_mariadb(ctx: LabContext, host: str) -> None:
    spawn(ctx, host, f"mariadbd-{host}", [which("mariadbd") or "/usr/sbin/mariadbd"])


def stop_mariadb(ctx: LabContext, host: str, timeout: float = 30) -> None:
    """Stop the lab's own mariadbd of `host`, by the pid the lab recorded (SIGTERM, then SIGKILL past `timeout`)."""
    pid = ctx.read_pid(f"mariadbd-{host}")
    if pid is None or not pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    stopped, _ = wait_until(lambda: not pid_alive(pid), timeout, 0.1)
    if not stopped:
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid), 10, 0.1)


def wait_mariadb(ctx: LabContext, host: str, timeout: float = 60) -> None:
    def state() -> str | None:
        if ctx.sql(host, "SELECT 1;", check=False, timeout=10).returncode == 0:
            return "up"
        return None if pid_alive(ctx.read_pid(f"mariadbd-{host}")) else "exited"

    _, seen = wait_until(state, timeout, 0.1, done=lambda s: s is not None)
    if seen == "exited":
        log = ctx.paths.datadir(host) / "error.log"
        tail = log.read_text(errors="replace").splitlines()[-5:] if log.exists() else []
        raise LabError(f"lab host {host}: mariadbd exited during start: " + " | ".join(tail))
    if seen is None:
        raise LabError(f"lab host {host}: MariaDB did not answer within {timeout:.0f}s")


def start_publisher(ctx: LabContext) -> None:
    """The relay of publish.py: listens on 127.0.0.1 and connects inside the lab hosts' network namespaces, so the
    root namespace needs no route to the lab. Returns once it has printed "ready" (every port is bound)."""
    spec = [[lp, f"/run/netns/{host}", tp] for lp, host, tp in ctx.topo.published_ports()]
    spec_file = ctx.paths.run / "publish.json"
    spec_file.write_text(json.dumps(spec))
    log = open(ctx.paths.run / "publish.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "drpoc_chaos.lab.publish", str(spec_file)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                            start_new_session=True, close_fds=True)
    log.close()
    ctx.write_pid("publish", proc.pid)
    line = proc.stdout.readline().decode().strip() if proc.stdout else ""
    if line != "ready":
        raise LabError("the 127.0.0.1 publisher did not start; see " + str(ctx.paths.run / "publish.log"))
    if proc.stdout:
        proc.stdout.close()
