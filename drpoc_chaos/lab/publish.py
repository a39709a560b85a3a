"""Publish lab services on 127.0.0.1 without giving the root namespace any route towards the lab's ranges.

A small relay runs in the root namespace: it listens on 127.0.0.1:<port> and, for each connection, opens the upstream
socket *inside* the lab host's network namespace (setns(2) applies to the calling thread only, so each relay thread
joins the target namespace before it connects) and copies bytes both ways. When the lab is down, nothing listens and a
stale inventory gets "connection refused" on loopback instead of sending packets anywhere.

Run as `python -m drpoc_chaos.lab.publish SPEC.json`; the spec lists [port, netns path, target port].
"""
from __future__ import annotations

import ctypes
import json
import os
import selectors
import signal
import socket
import sys
import threading
from typing import cast

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def _enter_netns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def _pump(client: socket.socket, netns: str, target_port: int) -> None:
    try:
        _enter_netns(netns)  # this thread only
        upstream = socket.create_connection(("127.0.0.1", target_port), timeout=5)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    for s in (client, upstream):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sel = selectors.DefaultSelector()
    sel.register(client, selectors.EVENT_READ, upstream)
    sel.register(upstream, selectors.EVENT_READ, client)
    try:
        open_sides = 2
        while open_sides:
            for key, _ in sel.select():
                src, dst = cast(socket.socket, key.fileobj), key.data  # only sockets are registered
                try:
                    data = src.recv(65536)
                except OSError:
                    data = b""
                if data:
                    dst.sendall(data)
                else:
                    sel.unregister(src)
                    open_sides -= 1
                    try:
                        dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
    except OSError:
        pass
    finally:
        sel.close()
        client.close()
        upstream.close()


def _serve(listener: socket.socket, netns: str, target_port: int) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_pump, args=(client, netns, target_port), daemon=True).start()


def main(argv: list[str]) -> int:
    spec = json.loads(open(argv[0]).read())
    listeners = []
    for port, netns, target_port in spec:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))  # loopback only, by design
        s.listen(128)
        listeners.append((s, netns, target_port))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    for s, netns, target_port in listeners:
        threading.Thread(target=_serve, args=(s, netns, target_port), daemon=True).start()
    print("ready", flush=True)
    stop.wait()
    for s, *_ in listeners:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
