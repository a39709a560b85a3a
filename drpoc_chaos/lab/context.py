"""What every part of the lab works with: where its files live, a progress line, a command or SQL statement run on
a lab host, the secrets, and the small runtime records under the run directory (pid files, lab.json).

The parts (keys, namespaces, daemons, bootstrap, inventory_file, health, teardown) take a `LabContext` as their first
argument; `lifecycle.Lab` is one, so a part never needs the orchestrator that calls it.
"""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Callable

from .system import run
from .topology import Paths, Topology, build_topology, enter_command

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def netns_exists(host: str) -> bool:
    return Path(f"/run/netns/{host}").exists()


class LabContext:
    def __init__(self, paths: Paths | None = None, progress: Progress = _quiet):
        self.paths = paths or Paths()
        self._t0 = time.monotonic()
        self._progress = progress
        self._topo: Topology | None = None

    @property
    def topo(self) -> Topology:
        """The lab's hosts and sites: as built (`use_topology`), else as lab.json records (`sites`), else the
        seed's two-site lab."""
        if self._topo is None:
            try:
                self._topo = build_topology(int(self.read_state().get("sites") or 1))
            except (TypeError, ValueError):
                self._topo = build_topology(1)
        return self._topo

    def use_topology(self, topo: Topology) -> None:
        self._topo = topo

    def say(self, msg: str) -> None:
        self._progress(f"[{time.monotonic() - self._t0:5.1f}s] {msg}")

    def exec_in(self, host: str, cmd: list[str], *, input: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess:
        return run(enter_command(host, self.paths) + cmd, input=input, check=check, timeout=timeout,
                   what=f"lab host {host}")

    def sql(self, host: str, sql: str, *, check: bool = True, timeout: float = 30,
            column_names: bool = False) -> subprocess.CompletedProcess:
        # root over the unix socket inside the host, the way an operator logged into the box runs it;
        # the SQL (which may carry passwords) goes through stdin, never the command line.
        cmd = ["mariadb", "--batch"] + ([] if column_names else ["--skip-column-names"])
        return self.exec_in(host, cmd, input=sql, check=check, timeout=timeout)

    def secret(self, name: str) -> str:
        return (self.paths.secrets / name).read_text().strip()

    def read_state(self) -> dict:
        """lab.json: the ESP data path and replica knobs the running lab was built with ({} when there is none)."""
        try:
            return json.loads(self.paths.lab_json.read_text())
        except (OSError, ValueError):
            return {}

    def read_pid(self, name: str) -> int | None:
        try:
            return int((self.paths.pids / name).read_text().strip())
        except (OSError, ValueError):
            return None

    def write_pid(self, name: str, pid: int) -> None:
        self.paths.pids.mkdir(parents=True, exist_ok=True)
        (self.paths.pids / name).write_text(f"{pid}\n")
