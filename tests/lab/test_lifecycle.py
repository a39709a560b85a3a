"""Lab lifecycle: idempotent up, clean down, leftovers after a crash, errors before touching anything.

Marked `lab_lifecycle`: it takes the lab down, so tests/conftest.py runs it after every other test, whatever the file
names; it leaves the lab up again for whatever follows.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from drpoc_chaos.lab.lifecycle import Lab
from drpoc_chaos.lab.topology import LAB_HOST_NAMES, MYSQL_PORT_BASE, SSH_PORT_BASE, Paths

SOURCE_PORT, REPLICA_PORT = MYSQL_PORT_BASE, MYSQL_PORT_BASE + 1  # the lab's, as `drpoc lab up` publishes them

pytestmark = [pytest.mark.lab, pytest.mark.lab_lifecycle]
DRPOC = [sys.executable, "-m", "drpoc_chaos.cli"]


def lab_leftovers() -> list[str]:
    left = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    left += [f"netns {n.split()[0]}" for n in netns.splitlines() if n.split() and n.split()[0] in LAB_HOST_NAMES]
    with open("/proc/self/mounts") as f:
        left += [f"mount {line.split()[1]}" for line in f
                 if "drpoc-lab" in line.split()[1] or line.split()[0] == "drpoc-run"]
    state = str(Paths().state)
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
        except OSError:
            continue
        if state in cmd or "drpoc_chaos.lab.publish" in cmd or "charon" in cmd or "mariadbd" in cmd:
            left.append(f"process {pid} {cmd[:60]!r}")
    if Paths().run.exists():
        left.append(str(Paths().run))
    return left


def test_up_twice_is_a_noop_that_says_so(lab):
    r = subprocess.run(DRPOC + ["lab", "up"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "already up" in r.stderr


def test_down_removes_everything_then_warm_up(lab):
    r = subprocess.run(DRPOC + ["lab", "down"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert lab_leftovers() == []
    r = subprocess.run(DRPOC + ["lab", "status"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "lab: down" in r.stdout
    t0 = time.monotonic()
    assert lab.up()["healthy"]
    print(f"warm up took {time.monotonic() - t0:.2f}s", file=sys.stderr)


def test_up_rebuilds_databases_an_interrupted_failover_left_promoted(lab):
    """A failover drill killed after its promotion, then `lab down` (which empties the gateway's /run and with it
    the failover record): the next `lab up` finds the replica replicating from nobody and rebuilds the pair, instead
    of failing on CHANGE MASTER or serving two primaries."""
    from drpoc_chaos.inventory import load_inventory
    from drpoc_chaos.services import context, replica, topology
    inv = load_inventory(str(Paths().inventory))
    context.close_all()
    topology.promote(inv.replica, inv)  # what the drill does before it is killed
    context.close_all()
    r = subprocess.run(DRPOC + ["lab", "down"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(DRPOC + ["lab", "up"], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert "left in another topology" in r.stderr
    context.close_all()
    assert topology.writers(inv) == {"source": True, "replica": False, "writers": 1, "single": True}
    assert replica.threads_running(replica.read_status(inv))


def test_a_lab_up_on_other_ports_is_rebuilt_on_the_configured_ones(lab):
    """A lab left up by an older default or another port base: `lab up` publishes the configured ports, and a base
    that is not a number, or puts a port in the kernel's ephemeral range, is refused before anything is touched."""
    moved = MYSQL_PORT_BASE + 1000
    env = {**os.environ, "DRPOC_LAB_MYSQL_PORT_BASE": str(moved)}
    r = subprocess.run(DRPOC + ["lab", "up"], capture_output=True, text=True, timeout=180, env=env)
    assert r.returncode == 0, r.stderr
    want = sorted([*range(SSH_PORT_BASE, SSH_PORT_BASE + 4), moved, moved + 1])
    assert "lab is up on other ports: rebuilding it on " + ", ".join(map(str, want)) in r.stderr, r.stderr
    assert f"onprem-db:3306->{moved + 1}" in r.stderr
    for bad, says in (("abc", "DRPOC_LAB_MYSQL_PORT_BASE='abc' is not a usable port base"),
                      ("33061", "lie in this machine's ephemeral port range")):
        r = subprocess.run(DRPOC + ["lab", "up"], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "DRPOC_LAB_MYSQL_PORT_BASE": bad})
        assert r.returncode == 1 and says in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert "rebuilding" not in r.stderr and "published on" not in r.stderr
    listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
    assert f"127.0.0.1:{moved + 1} " in listening            # the refusals touched nothing
    r = subprocess.run(DRPOC + ["lab", "up"], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and f"onprem-db:3306->{REPLICA_PORT}" in r.stderr, r.stderr
    listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
    assert f"127.0.0.1:{REPLICA_PORT} " in listening and f"127.0.0.1:{moved + 1} " not in listening


def test_port_taken_is_refused_before_touching_anything(lab):
    lab.down(quiet=True)
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", REPLICA_PORT))
    blocker.listen(1)
    try:
        r = subprocess.run(DRPOC + ["lab", "up"], capture_output=True, text=True, timeout=60)
    finally:
        blocker.close()
    assert r.returncode == 1
    assert f"127.0.0.1:{REPLICA_PORT} is already taken" in r.stderr and "DRPOC_LAB_MYSQL_PORT_BASE" in r.stderr
    assert lab_leftovers() == []


def test_not_root_is_refused_clearly(lab):
    # fork and drop to nobody: the interpreter lives under /root, which nobody cannot exec
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            from drpoc_chaos.lab.system import LabError
            try:
                Lab().up()
                msg = "no error"
            except LabError as exc:
                msg = str(exc)
            os.write(write_fd, msg.encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    msg = os.read(read_fd, 4096).decode()
    os.waitpid(pid, 0)
    assert "not running as root" in msg and "run it as root" in msg


def test_crash_during_up_then_down_cleans_and_up_repairs(lab):
    lab.down(quiet=True)
    proc = subprocess.Popen(DRPOC + ["lab", "up"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # wait until it is half-way (namespaces exist, daemons starting), then kill it hard
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not os.path.exists("/run/netns/onprem-db"):
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert lab_leftovers(), "the crash left nothing behind: the test did not test anything"
    r = subprocess.run(DRPOC + ["lab", "up"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "leftovers" in r.stderr
    r = subprocess.run(DRPOC + ["lab", "down"], capture_output=True, text=True, timeout=60)
    assert lab_leftovers() == []
    assert lab.up()["healthy"]
