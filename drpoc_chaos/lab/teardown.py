"""Stopping what the lab started, by PID and never by process name, and finding what an earlier lab left behind.

The processes to stop are the publisher (its pid file, checked against its command line) and every process whose
network or mount namespace is one of the lab's: all of them were started by the lab or by someone entering a lab
host, none belongs to the machine. They get SIGTERM (mariadbd then shuts down cleanly, so the next warm `lab up` is
fast), and SIGKILL if still there after 8 s. Removing the namespaces themselves is namespaces.remove_namespaces.
"""
from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from ..core.clock import wait_until
from .context import LabContext, netns_exists
from .system import pid_alive
from .topology import Paths, lab_host_name


def lab_namespaces(ctx: LabContext) -> list[str]:
    """The lab's hosts as built (lab.json), and any other namespace the lab names (a fleet lab of another size, or
    one whose lab.json is gone)."""
    names = list(ctx.topo.host_names)
    try:
        names += sorted(n for n in os.listdir("/run/netns") if lab_host_name(n) and n not in names)
    except OSError:
        pass
    return names


def leftovers(ctx: LabContext) -> list[str]:
    found = [f"namespace {h}" for h in lab_namespaces(ctx) if netns_exists(h)]
    if ctx.paths.run.exists():
        found.append(str(ctx.paths.run))
    if ctx.read_pid("publish") and pid_alive(ctx.read_pid("publish")):
        found.append("127.0.0.1 publisher")
    return found


def stop_processes(ctx: LabContext) -> list[str]:
    """TERM, then KILL, the publisher and every process in a lab namespace. Returns what was stopped."""
    removed: list[str] = []
    pub = ctx.read_pid("publish")
    # a stale pid file may name a pid the system has since given to another process: only ours is stopped
    if not (pub and pid_alive(pub) and _cmdline_has(pub, "drpoc_chaos.lab.publish")):
        pub = None
    if pub:
        os.kill(pub, signal.SIGTERM)
        removed.append(f"publisher pid {pub}")
    pids = lab_processes(ctx.paths, lab_namespaces(ctx))
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)  # mariadbd shuts down cleanly on TERM: the next warm up is fast
        except ProcessLookupError:
            pass
    wait_until(lambda: not any(pid_alive(p) for p in pids + ([pub] if pub else [])), 8, 0.05)
    for pid in pids + ([pub] if pub else []):
        if pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if pids:
        removed.append(f"{len(pids)} lab processes")
    return removed


def remove_run_dir(p: Paths) -> list[str]:
    """Delete the run directory, unless something is still mounted under it. Returns what was removed."""
    removed: list[str] = []
    if p.run.exists():
        # never follow into anything still mounted
        if not _has_mounts_under(p.run):
            shutil.rmtree(p.run, ignore_errors=True)
            removed.append(str(p.run))
    return removed


def _lab_namespace_inodes(p: Paths, names: list[str]) -> set[tuple[int, int]]:
    inodes = set()
    for h in names:
        for f in (Path(f"/run/netns/{h}"), p.mnt_ns(h)):
            try:
                # a mounted namespace file stats as the nsfs inode that /proc/PID/ns/* shows;
                # a stale unmounted file has a plain inode and matches no process
                st = os.stat(f)
                inodes.add((st.st_dev, st.st_ino))
            except OSError:
                pass
    return inodes


def lab_processes(p: Paths, names: list[str]) -> list[int]:
    """PIDs of every process living in one of the lab namespaces `names`: all were started by the lab (or by
    someone entering a lab host), none belongs to the machine."""
    inodes = _lab_namespace_inodes(p, names)
    if not inodes:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        for ns in ("net", "mnt"):
            try:
                st = os.stat(f"/proc/{entry}/ns/{ns}")
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in inodes:
                pids.append(int(entry))
                break
    return pids


def _cmdline_has(pid: int, needle: str) -> bool:
    try:
        return needle in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def _has_mounts_under(path: Path) -> bool:
    prefix = str(path).rstrip("/") + "/"
    with open("/proc/self/mounts") as f:
        for line in f:
            target = line.split()[1].replace("\\040", " ")
            if target == str(path) or target.startswith(prefix):
                return True
    return False
