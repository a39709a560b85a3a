"""Local TCP ports: is one free, and may it be taken at any moment by an outgoing connection?

Shared by the lab's publisher and the local Prefect server (neither owns the other)."""
from __future__ import annotations

import socket

EPHEMERAL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
RESERVED_PORTS_FILE = "/proc/sys/net/ipv4/ip_local_reserved_ports"


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # as the publisher binds: connections lingering in TIME_WAIT do not make a port "taken", a listener does
    # (and so does an open outgoing connection whose local port it is)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
        return False
    except OSError:
        return True
    finally:
        s.close()


def parse_port_range(text: str) -> tuple[int, int] | None:
    """`ip_local_port_range` ("32768\\t60999") -> (32768, 60999); None when unreadable."""
    parts = text.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    low, high = int(parts[0]), int(parts[1])
    return (low, high) if low <= high else None


def parse_port_list(text: str) -> set[int]:
    """`ip_local_reserved_ports` ("8080,13306-13330" or empty) -> the ports it names."""
    ports: set[int] = set()
    for item in text.strip().split(","):
        low, dash, high = item.strip().partition("-")
        if low.isdigit() and (high.isdigit() if dash else True):
            ports.update(range(int(low), int(high or low) + 1))
    return ports


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def ephemeral_ports_at_risk(ports: list[int]) -> tuple[list[int], tuple[int, int] | None]:
    """The ports the kernel may hand to any outgoing connection as its local port (the ephemeral range, minus
    the reserved ports), and that range. A service published on one can find it taken at random."""
    span = parse_port_range(_read(EPHEMERAL_RANGE_FILE))
    if span is None:
        return [], None
    reserved = parse_port_list(_read(RESERVED_PORTS_FILE))
    return [p for p in ports if span[0] <= p <= span[1] and p not in reserved], span
