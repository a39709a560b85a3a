"""MariaDB from an empty directory to a replicating pair: data directories, users and tables on the source, the
replica pointed at the source through the tunnel, and the replica's timing knobs.

A `bootstrapped` marker in hosts/<host>/ says a database host has been through this once; with it, a warm `lab up`
reuses the data directory and only re-applies the knobs. The SQL text comes from configs.py; it goes to the server
as root over the unix socket inside the host (LabContext.sql), so passwords never appear on a command line.
"""
from __future__ import annotations

import shutil
import uuid

from . import configs
from .context import LabContext
from .system import LabError
from .topology import ReplicaKnobs


def prepare_datadir(ctx: LabContext, host: str) -> bool:
    """Returns True when the data directory had to be initialised."""
    data = ctx.paths.datadir(host)
    marker = ctx.paths.host_dir(host) / "bootstrapped"
    if marker.exists() and (data / "mysql").is_dir():
        return False
    marker.unlink(missing_ok=True)
    for attempt in (1, 2):
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        shutil.chown(data, "mysql", "mysql")
        try:
            ctx.exec_in(host, ["mariadb-install-db", "--user=mysql", f"--datadir={data}",
                               "--auth-root-authentication-method=socket", "--skip-test-db"], timeout=120)
            return True
        except LabError as exc:
            if attempt == 2:
                raise
            # seen once in a benchmark loop, not reproduced since: say it and start the directory afresh
            ctx.say(f"{host}: mariadb-install-db failed ({exc}); retrying once on a fresh directory")
    return True


def _replicas(ctx: LabContext) -> list[str]:
    return [d["host"] for d in ctx.topo.databases.values() if d["role"] == "replica"]


def bootstrap_replication(ctx: LabContext, knobs: ReplicaKnobs) -> None:
    source = ctx.topo.databases["aws"]
    src = source["host"]
    if not (ctx.paths.host_dir(src) / "bootstrapped").exists():
        ctx.sql(src, configs.source_bootstrap_sql(ctx.secret("mysql_password"), ctx.secret("repl_password")))
        # the source's generation: a replica bootstrapped from it keeps the same token (see stale_replicas)
        (ctx.paths.host_dir(src) / "bootstrapped").write_text(uuid.uuid4().hex + "\n")
        ctx.say("source bootstrapped: users repl and drpoc, testdb.ping, drpoc.heartbeat")
    fresh = [rep for rep in _replicas(ctx) if not (ctx.paths.host_dir(rep) / "bootstrapped").exists()]
    for rep in fresh:
        ctx.sql(rep, configs.replica_bootstrap_sql(source["ip"], ctx.secret("repl_password"), knobs))
        (ctx.paths.host_dir(rep) / "bootstrapped").write_text(_marker(ctx, src))
    if fresh:
        ctx.say(f"replica{'s' if len(fresh) > 1 else ''} configured ({', '.join(fresh)}): CHANGE MASTER TO "
                f"{source['ip']} through the tunnel, GTID slave_pos")
    if len(fresh) < len(_replicas(ctx)):
        apply_knobs(ctx, knobs, [r for r in _replicas(ctx) if r not in fresh])


def _marker(ctx: LabContext, host: str) -> str:
    try:
        return (ctx.paths.host_dir(host) / "bootstrapped").read_text()
    except OSError:
        return ""


def stale_replicas(ctx: LabContext) -> list[str]:
    """Reused replicas bootstrapped from an earlier generation of the source (a fleet lab's spoke kept on disk while
    a smaller lab rebuilt the source): their GTID history is not the source's, so they cannot simply resume."""
    src = ctx.topo.databases["aws"]["host"]
    return [rep for rep in _replicas(ctx)
            if (ctx.paths.host_dir(rep) / "bootstrapped").exists() and _marker(ctx, rep) != _marker(ctx, src)]


# errors after which a replica cannot resume from its own position: the source no longer has the binlog it needs
# (1236, e.g. the source was re-seeded by a failover drill while this replica sat on disk), or a transaction it
# cannot apply (a duplicate key: its data is not the source's)
_UNRESUMABLE_IO = {1236}


def broken_replicas(ctx: LabContext, wait: float = 10.0) -> list[str]:
    """Replicas whose replication stopped on an error they cannot get past by themselves, watched for up to `wait`
    seconds after the lab started them ([] as soon as every replica runs both threads)."""
    from ..core.clock import wait_until
    from ..replication.status import ReplicaStatusParseError, parse_replica_status_text

    def broken() -> list[str] | None:
        out, running = [], 0
        for rep in _replicas(ctx):
            r = ctx.sql(rep, "SHOW SLAVE STATUS\\G", check=False, timeout=10, column_names=True)
            try:
                st = parse_replica_status_text(r.stdout) if r.returncode == 0 else None
            except ReplicaStatusParseError:
                st = None
            if st is None:
                continue
            if st.last_io_errno in _UNRESUMABLE_IO or st.last_sql_errno:
                out.append(rep)
            elif st.io_running == "Yes" and st.sql_running == "Yes":
                running += 1
        if out:
            return out
        return [] if running == len(_replicas(ctx)) else None

    _, seen = wait_until(broken, wait, 0.2, done=lambda b: b is not None)
    return seen or []


def apply_knobs(ctx: LabContext, knobs: ReplicaKnobs, replicas: list[str] | None = None) -> None:
    for rep in replicas if replicas is not None else _replicas(ctx):
        ctx.sql(rep, configs.replica_knobs_sql(knobs))
    ctx.say(f"replica knobs: net timeout {knobs.net_timeout}s, heartbeat {knobs.heartbeat_period}s, "
            f"connect retry {knobs.connect_retry}s")


def in_lab_topology(ctx: LabContext) -> bool:
    """The reused databases are the lab's pair: the source replicates from nobody, the replica replicates from the
    source through the tunnel. An interrupted failover drill can leave them otherwise (the replica promoted, the
    source re-pointed), and its record on the gateway does not survive `lab down`."""
    source = ctx.topo.databases["aws"]
    source_status = ctx.sql(source["host"], "SHOW SLAVE STATUS\\G", check=False, timeout=10)
    if source_status.returncode != 0 or source_status.stdout.strip():
        return False
    for rep in _replicas(ctx):
        replica_status = ctx.sql(rep, "SHOW SLAVE STATUS\\G", check=False, timeout=10, column_names=True)
        if replica_status.returncode != 0 or f"Master_Host: {source['ip']}" not in replica_status.stdout:
            return False
    return True
