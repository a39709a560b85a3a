"""Is a local TCP port free? Shared by the lab's publisher and the local Prefect server (neither owns the other)."""
from __future__ import annotations

import socket


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # as the publisher binds: connections lingering in TIME_WAIT do not make a port "taken", a listener does
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
        return False
    except OSError:
        return True
    finally:
        s.close()
