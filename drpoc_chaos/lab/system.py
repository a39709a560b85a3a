"""Thin helpers to run the machine's tools for the lab: subprocess with clear errors, preflight checks."""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Collection
from dataclasses import dataclass

from ..ports import ephemeral_ports_at_risk, port_in_use


class LabError(RuntimeError):
    """A lab operation failed; the message says what, where, and what to do."""


# binary -> Debian package that provides it
REQUIRED_BINARIES = {
    "ip": "iproute2",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "nft": "nftables",
    "ipsec": "strongswan-starter",
    "swanctl": "strongswan-swanctl",
    "mariadbd": "mariadb-server",
    "mariadb-install-db": "mariadb-server",
    "mariadb": "mariadb-client",
    "sshd": "openssh-server",
    "ssh-keygen": "openssh-client",
    "sudo": "sudo",
}
REQUIRED_FILES = {
    # kernel-libipsec, for kernels without ESP (docs/LAB.md)
    "/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so": "libcharon-extra-plugins",
}
SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")


def which(binary: str, extra: list[str] | None = None) -> str | None:
    path = shutil.which(binary)
    if path:
        return path
    for d in [*SBIN_DIRS, *(extra or [])]:  # root's PATH may lack sbin under some sudo/CI setups
        p = os.path.join(d, binary)
        if os.access(p, os.X_OK):
            return p
    return None


def run(cmd: list[str], *, input: str | None = None, check: bool = True, timeout: float = 60,
        what: str | None = None) -> subprocess.CompletedProcess:
    """Run a command, capture text output; on failure raise LabError naming the command and its stderr."""
    try:
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{what or cmd[0]}: `{' '.join(cmd)}` did not finish within {timeout:.0f}s") from exc
    except FileNotFoundError as exc:
        raise LabError(f"{what or cmd[0]}: `{cmd[0]}` is not installed") from exc
    if check and proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        # the lines that say what went wrong, not the tool's closing boilerplate
        errors = [line for line in lines if "error" in line.lower() or "fatal" in line.lower()]
        detail = (errors or lines)[-5:]
        raise LabError(f"{what or cmd[0]}: `{' '.join(cmd)}` exited {proc.returncode}: " + " | ".join(detail))
    return proc


@dataclass
class PreflightProblem:
    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.what} — {self.fix}"


def preflight(ports: list[int], our_ports: Collection[int] = (),
              port_setting_problems: Collection[tuple[str, str]] = ()) -> list[PreflightProblem]:
    """Everything that must hold before the lab touches the machine. Returns problems, empty when all is well.

    `ports`: the ones the lab will publish on 127.0.0.1; `our_ports`: those a running lab publishes already;
    `port_setting_problems`: (what, fix) of port settings that could not be used."""
    problems: list[PreflightProblem] = []
    if os.geteuid() != 0:
        problems.append(PreflightProblem("not running as root",
                                         "the lab creates network namespaces and starts daemons: run it as root "
                                         "(sudo .venv/bin/drpoc lab up)"))
        return problems
    missing: dict[str, list[str]] = {}
    for binary, package in REQUIRED_BINARIES.items():
        if not which(binary):
            missing.setdefault(package, []).append(binary)
    for path, package in REQUIRED_FILES.items():
        if not os.path.exists(path):
            missing.setdefault(package, []).append(path)
    if missing:
        pkgs = " ".join(sorted(missing))
        what = "; ".join(f"{p} (for {', '.join(b)})" for p, b in sorted(missing.items()))
        problems.append(PreflightProblem(f"missing packages: {what}",
                                         f"install them: apt-get install -y {pkgs}  (or run `make demo`)"))
    if not os.path.exists("/dev/net/tun"):
        problems.append(PreflightProblem("the kernel has no TUN device (/dev/net/tun)",
                                         "strongSwan's kernel-libipsec needs CONFIG_TUN; load it with `modprobe tun`"))
    if not os.path.exists("/proc/self/ns/net") or not os.path.exists("/proc/self/ns/mnt"):
        problems.append(PreflightProblem("the kernel has no network/mount namespaces",
                                         "the lab needs CONFIG_NET_NS and mount namespaces"))
    for what, fix in port_setting_problems:
        problems.append(PreflightProblem(what, fix))
    at_risk, span = ephemeral_ports_at_risk(ports)
    if at_risk and span:
        # the kernel gives any outgoing connection a local port from this range: one open at the wrong moment
        # (ours, a package manager's, a monitoring agent's) holds the port and the lab cannot publish it
        problems.append(PreflightProblem(
            f"the lab's ports {_spans(at_risk)} lie in this machine's ephemeral port range {span[0]}-{span[1]} "
            "(net.ipv4.ip_local_port_range), where any outgoing connection may take one at any moment",
            "move them below it with DRPOC_LAB_SSH_PORT_BASE / DRPOC_LAB_MYSQL_PORT_BASE (the defaults 2201 and "
            "13306 are), or reserve them: add " + _spans(at_risk, sep=",") + " to net.ipv4.ip_local_reserved_ports"))
    for port in ports:
        if port not in our_ports and port_in_use(port):
            problems.append(PreflightProblem(
                f"port 127.0.0.1:{port} is already taken",
                f"stop what listens there (ss -ltnp 'sport = :{port}'), close the connection that holds it "
                f"(ss -tnp 'sport = :{port}'), or move the lab's ports with "
                "DRPOC_LAB_SSH_PORT_BASE / DRPOC_LAB_MYSQL_PORT_BASE"))
    return problems


def _spans(ports: list[int], sep: str = ", ") -> str:
    """[13306, 13307, 13308, 2201] -> "2201, 13306-13308": how sysctl and people write port lists."""
    out: list[str] = []
    for port in sorted(set(ports)):
        if out and out[-1].rsplit("-", 1)[-1] == str(port - 1):
            out[-1] = out[-1].split("-")[0] + f"-{port}"
        else:
            out.append(str(port))
    return sep.join(out)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False
