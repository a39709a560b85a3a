"""The lab's hosts as Linux namespaces: creating and removing them.

Each lab host is a network namespace (`ip netns`) plus a persistent mount and UTS namespace, so every host has its
own /run (strongSwan hard-codes /var/run/charon.*), its own /sys, its own hostname and its own /etc files, and the
seed's plain commands (`ipsec statusall`, `mariadb -e ...`) work unchanged inside it (docs/LAB.md). The WAN router
runs no daemon and gets a network namespace only.

Also here: the throwaway namespace that probes whether this kernel can hold an ESP state at all, which decides
strongSwan's data path (kernel ESP or kernel-libipsec on a TUN device).
"""
from __future__ import annotations

from pathlib import Path

from . import configs
from .context import netns_exists
from .system import run
from .topology import TWO_SITES, Paths, Topology

ESP_PROBE_NETNS = "drpoc-espprobe"


def detect_esp(mode: str) -> str:
    """"kernel" or "libipsec": the given mode, or for "auto" what this kernel supports."""
    if mode in ("kernel", "libipsec"):
        return mode
    # Definitive test: can this kernel hold an ESP state at all? (CONFIG_INET_ESP)
    probe = ESP_PROBE_NETNS
    run(["ip", "netns", "del", probe], check=False)
    run(["ip", "netns", "add", probe])
    try:
        r = run(["ip", "-n", probe, "xfrm", "state", "add", "src", "198.18.255.1", "dst", "198.18.255.2", "proto",
                 "esp", "spi", "0x100", "mode", "tunnel", "enc", "cbc(aes)", "0x" + "00" * 16, "auth",
                 "hmac(sha256)", "0x" + "00" * 32], check=False)
        return "kernel" if r.returncode == 0 else "libipsec"
    finally:
        run(["ip", "netns", "del", probe], check=False)


def create_network(topo: Topology = TWO_SITES) -> None:
    """Network namespaces, veth links, addresses, routes (blackholes included), forwarding, the WAN's nft table."""
    HOSTS, LINKS = topo.hosts, topo.links
    for h in HOSTS:
        run(["ip", "netns", "add", h.name], what="create namespaces")
    for link in LINKS:
        run(["ip", "link", "add", link.a_dev, "netns", link.a_host, "type", "veth", "peer", "name", link.b_dev, "netns",
             link.b_host], what="create links")
    for h in HOSTS:
        batch = ["link set lo up"]
        for link in LINKS:
            if link.a_host == h.name:
                batch += [f"addr add {link.a_addr} dev {link.a_dev}", f"link set {link.a_dev} up"]
            if link.b_host == h.name:
                batch += [f"addr add {link.b_addr} dev {link.b_dev}", f"link set {link.b_dev} up"]
        batch += [f"route add {r}" for r in h.routes]
        run(["ip", "-n", h.name, "-batch", "-"], input="\n".join(batch) + "\n", what=f"network of {h.name}")
        if h.forward:
            run(["ip", "netns", "exec", h.name, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
    run(["ip", "netns", "exec", "wan", "nft", "-f", "-"], input=configs.wan_counters_nft(),
        what="WAN counters")


def mount_namespaces(p: Paths, binds: dict[str, list[tuple[Path, str]]]) -> None:
    """A persistent mount + UTS namespace for each host in `binds`, in that order, with those files bind-mounted
    (source on disk, target path inside the host), a fresh /run and a /sys of its own."""
    # The folder holding mount-namespace files must be a private mount, or the bind of a namespace file
    # would propagate into the namespaces themselves (docs/LAB.md).
    run(["mount", "--bind", str(p.ns_dir), str(p.ns_dir)])
    run(["mount", "--make-private", str(p.ns_dir)])
    for host, host_binds in binds.items():
        script = ["set -e", f"hostname {host}"]
        script += [f"mount --bind '{src}' '{dst}'" for src, dst in host_binds]
        # Drop this namespace's copies of everything mounted under /run (other namespaces' files included),
        # then give the host a fresh /run and a /sys that shows its own network devices.
        script += ["findmnt -rn -o TARGET | grep -E '^/run(/|$)' | sort -r | while read m; do umount -l \"$m\"; done",
                   "mount -t tmpfs -o mode=0755,size=64m drpoc-run /run",
                   "mount -t sysfs sysfs /sys",
                   "mkdir -p /run/sshd /run/mysqld /run/netns && chmod 0755 /run/sshd",
                   "chown mysql:mysql /run/mysqld"]
        for f in (p.mnt_ns(host), p.uts_ns(host)):
            f.touch()
        run(["nsenter", f"--net=/run/netns/{host}", "unshare", f"--mount={p.mnt_ns(host)}",
             f"--uts={p.uts_ns(host)}", "--propagation", "private", "sh", "-c", "\n".join(script)],
            what=f"mount namespace of {host}")


def remove_namespaces(p: Paths, names: list[str]) -> list[str]:
    """Unmount the namespace files, delete the network namespaces (and a probe left behind). Run it after every
    process in them is gone. Returns what was removed, for the `lab down` message."""
    removed: list[str] = []
    ns_dir = p.ns_dir
    if ns_dir.exists():
        for f in sorted(ns_dir.iterdir()):
            run(["umount", str(f)], check=False)
        run(["umount", "-l", str(ns_dir)], check=False)
    for h in names:
        if netns_exists(h):
            run(["ip", "netns", "del", h], check=False)
            removed.append(f"namespace {h}")
    run(["ip", "netns", "del", ESP_PROBE_NETNS], check=False)
    return removed
