"""Bring the two-site lab up, tear it down, report its state: the order of the steps, nothing more.

Each step lives in the module of its concern (docs/LAB.md tells the whole story):

    keys.py            secrets files, the client key, host keys, known_hosts, login users' homes
    namespaces.py      ESP probe, network namespaces, links, routes, mount + UTS namespaces, and removing them
    host_files.py      the /etc files each host sees (bind-mounted by namespaces.py)
    daemons.py         sshd, charon, mariadbd, the 127.0.0.1 publisher; pid files
    bootstrap.py       MariaDB data directories, users and tables, replication, replica knobs
    inventory_file.py  the lab's inventory.yaml
    health.py          health and status checks
    teardown.py        leftovers of an earlier lab, stopping processes by PID, removing the run directory
    context.py         what they all share: paths, progress, commands and SQL on a lab host, pid files, lab.json

Below them: topology.py (data), configs.py (file texts), system.py (running tools, preflight).
"""
from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

from . import bootstrap, daemons, health, host_files, inventory_file, keys, namespaces, teardown
from .context import LabContext, Progress
from .system import LabError, pid_alive, preflight
from .topology import PORT_SETTING_PROBLEMS, LabSettings, Paths, ReplicaKnobs, build_topology

# LabSettings, Paths, ReplicaKnobs and LabError are imported from here by tests and tools: keep them exported.
__all__ = ["Lab", "LabError", "LabSettings", "Paths", "Progress", "ReplicaKnobs"]


class Lab(LabContext):
    """The lab on this machine. `Lab(paths, progress)`; also gives `say`, `exec_in`, `sql` and `secret` (LabContext)."""

    # ------------------------------------------------------------------ up
    def leftovers(self) -> list[str]:
        return teardown.leftovers(self)

    def up(self, settings: LabSettings | None = None) -> dict:
        settings = settings or LabSettings()
        settings.knobs.validate()
        running_sites = int(self.read_state().get("sites") or 1) if self.paths.lab_json.exists() else None
        self.use_topology(build_topology(settings.sites))
        ports = [p for p, _, _ in self.topo.published_ports()]
        publishing = bool(self.read_pid("publish") and pid_alive(self.read_pid("publish")))
        # a running lab's own ports are not "taken"; a lab from before lab.json recorded them published the same
        published = self.read_state().get("published", ports) if publishing else []
        problems = preflight(ports, our_ports=published, port_setting_problems=PORT_SETTING_PROBLEMS)
        if problems:
            raise LabError("the lab cannot start:\n" + "\n".join(f"  - {p}" for p in problems))
        if self.paths.lab_json.exists():
            now = self.health()
            state = self.read_state()
            running_mode = state.get("ipsec_mode") or "ipsec"
            if now["healthy"] and running_mode != settings.ipsec:
                self.say(f"lab is up in {running_mode} mode: rebuilding it in {settings.ipsec} mode")
                self.down(quiet=True)
                return self._build_or_clean(settings)
            if running_sites != settings.sites:
                self.say(f"lab is up with {running_sites} on-prem site(s): rebuilding it with {settings.sites}")
                self.down(quiet=True)
                return self._build_or_clean(settings)
            if publishing and sorted(published) != sorted(ports):
                self.say("lab is up on other ports: rebuilding it on " + ", ".join(map(str, sorted(ports))))
                self.down(quiet=True)
                return self._build_or_clean(settings)
            if now["healthy"]:
                # a lab left up by an older drpoc-chaos keeps its gateway helper: bring it to this version's
                refreshed = host_files.refresh_helpers(self.paths, self.topo)
                if refreshed:
                    self.say(f"gateway helper updated on {', '.join(refreshed)}")
            if now["healthy"] and state.get("knobs") == settings.knobs.__dict__:
                self.say("lab is already up and healthy: nothing to do")
                return {"changed": False, **now}
            if now["healthy"]:
                self.say("lab is up; applying new replica knobs")
                bootstrap.apply_knobs(self, settings.knobs)
                state["knobs"] = settings.knobs.__dict__
                self.paths.lab_json.write_text(json.dumps(state, indent=2))
                inventory_file.write_inventory(self.paths, running_mode, self.topo)
                return {"changed": True, **self.health()}
        left = self.leftovers()
        if left:
            self.say(f"found leftovers of an earlier lab ({', '.join(left)}): cleaning them first")
            self.down(quiet=True)
        return self._build_or_clean(settings)

    def _build_or_clean(self, settings: LabSettings) -> dict:
        try:
            return self._build(settings)
        except BaseException:
            self.say("lab up failed: tearing down what was built")
            self.down(quiet=True)
            raise

    def _build(self, settings: LabSettings) -> dict:
        p = self.paths
        for d in (p.state, p.run, p.pids, p.ns_dir, p.shared_etc):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(p.state, 0o755)
        esp = namespaces.detect_esp(settings.esp_mode)
        self.say(f"ESP data path: {esp} ({'kernel ESP' if esp == 'kernel' else 'strongSwan kernel-libipsec on TUN'})")
        topo = self.topo
        keys.ensure_secrets_and_keys(p, topo.hosts)
        namespaces.create_network(topo)
        self.say(f"network: {len(topo.hosts)} namespaces, {len(topo.links)} links, routes, blackholes, WAN counters")
        host_files.write_host_files(self, settings, libipsec=(esp == "libipsec"))
        namespaces.mount_namespaces(p, {h.name: host_files.etc_binds(p, h) for h in topo.hosts if h.has_mount_ns})
        self.say("hosts: mount + UTS namespaces with their own /run, /sys and /etc files")
        databases = topo.database_hosts
        with ThreadPoolExecutor(max_workers=4) as pool:
            db_jobs = [pool.submit(bootstrap.prepare_datadir, self, host) for host in databases]
            for h in topo.hosts:
                if h.ssh_port:
                    daemons.start_sshd(self, h.name)
            self.say(f"sshd started on the {sum(1 for h in topo.hosts if h.ssh_port)} hosts")
            daemons.start_strongswan(self, settings.ipsec)
            fresh = [j.result() for j in db_jobs]
        self.say("MariaDB data directories ready" + (" (initialised)" if any(fresh) else " (reused)"))
        for host in databases:
            daemons.start_mariadb(self, host)
        daemons.start_publisher(self)
        self.say("published on 127.0.0.1: " + ", ".join(f"{h}:{tp}->{lp}" for lp, h, tp in topo.published_ports()))
        for host in databases:
            daemons.wait_mariadb(self, host)
        mixed = (any(fresh) and not all(fresh)) or bool(bootstrap.stale_replicas(self))
        if mixed or (not any(fresh) and not bootstrap.in_lab_topology(self)):
            # an interrupted failover drill (its record on the gateway went with `lab down`) leaves the databases in
            # another topology; a new spoke's empty replica under a reused source could not replicate history the
            # source may have reset. The lab's data is disposable, its replication is not: start every database
            # from an empty directory.
            self.say("the databases were left in another topology (an interrupted failover drill?): rebuilding them"
                     if not mixed else "new sites next to reused databases: rebuilding every database")
            self._rebuild_databases(databases)
        bootstrap.bootstrap_replication(self, settings.knobs)
        broken = bootstrap.broken_replicas(self)
        if broken:
            # reused data that cannot replicate any more (a source re-seeded while a spoke sat on disk): the lab's
            # data is disposable, its replication is not
            self.say(f"replication cannot resume on {', '.join(broken)}: rebuilding every database")
            self._rebuild_databases(databases)
            bootstrap.bootstrap_replication(self, settings.knobs)
        health.wait_healthy(self, timeout=60 + 15 * topo.spokes, mode=settings.ipsec)
        state = {"esp_mode": esp, "ipsec_mode": settings.ipsec, "knobs": settings.knobs.__dict__,
                 "sites": topo.spokes, "published": [lp for lp, _, _ in topo.published_ports()],
                 "started": time.time()}
        p.lab_json.write_text(json.dumps(state, indent=2))
        inventory_file.write_inventory(p, settings.ipsec, topo)
        self.say(f"lab is up; inventory at {p.inventory}")
        return {"changed": True, **self.health()}

    def _rebuild_databases(self, databases: tuple[str, ...]) -> None:
        """Every database from an empty data directory (stopped by the lab's own pids, then started again)."""
        for host in databases:
            daemons.stop_mariadb(self, host)
            (self.paths.host_dir(host) / "bootstrapped").unlink(missing_ok=True)
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda host: bootstrap.prepare_datadir(self, host), databases))
        for host in databases:
            daemons.start_mariadb(self, host)
        for host in databases:
            daemons.wait_mariadb(self, host)

    # ------------------------------------------------------------------ status
    def tunnel_state(self, host: str) -> dict:
        return health.tunnel_state(self, host)

    def replica_state(self) -> dict:
        return health.replica_state(self)

    def wan_counters(self) -> dict:
        return health.wan_counters()

    def daemons(self) -> dict:
        return health.daemon_states(self)

    def health(self) -> dict:
        return health.check(self)

    def status(self) -> dict:
        return health.status(self)

    # ------------------------------------------------------------------ down
    def down(self, quiet: bool = False) -> dict:
        say = (lambda m: None) if quiet else self.say
        removed = teardown.stop_processes(self)
        removed += namespaces.remove_namespaces(self.paths, teardown.lab_namespaces(self))
        removed += teardown.remove_run_dir(self.paths)
        say("lab is down" + (": removed " + ", ".join(removed) if removed else ": nothing was up"))
        return {"removed": removed}
