"""MariaDB from an empty directory to a replicating pair: data directories, users and tables on the source, the
replica pointed at the source through the tunnel, and the replica's timing knobs.

A `bootstrapped` marker in hosts/<host>/ says a database host has been through this once; with it, a warm `lab up`
reuses the data directory and only re-applies the knobs. The SQL text comes from configs.py; it goes to the server
as root over the unix socket inside the host (LabContext.sql), so passwords never appear on a command line.
"""
from __future__ import annotations

import shutil

from . import configs
from .context import LabContext
from .system import LabError
from .topology import DATABASES, ReplicaKnobs


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


def bootstrap_replication(ctx: LabContext, knobs: ReplicaKnobs) -> None:
    src, rep = DATABASES["aws"]["host"], DATABASES["onprem"]["host"]
    if not (ctx.paths.host_dir(src) / "bootstrapped").exists():
        ctx.sql(src, configs.source_bootstrap_sql(ctx.secret("mysql_password"), ctx.secret("repl_password")))
        (ctx.paths.host_dir(src) / "bootstrapped").touch()
        ctx.say("source bootstrapped: users repl and drpoc, testdb.ping, drpoc.heartbeat")
    if not (ctx.paths.host_dir(rep) / "bootstrapped").exists():
        ctx.sql(rep, configs.replica_bootstrap_sql(DATABASES["aws"]["ip"], ctx.secret("repl_password"), knobs))
        (ctx.paths.host_dir(rep) / "bootstrapped").touch()
        ctx.say("replica configured: CHANGE MASTER TO 10.20.11.123 through the tunnel, GTID slave_pos")
    else:
        apply_knobs(ctx, knobs)


def apply_knobs(ctx: LabContext, knobs: ReplicaKnobs) -> None:
    ctx.sql(DATABASES["onprem"]["host"], configs.replica_knobs_sql(knobs))
    ctx.say(f"replica knobs: net timeout {knobs.net_timeout}s, heartbeat {knobs.heartbeat_period}s, "
            f"connect retry {knobs.connect_retry}s")


def in_lab_topology(ctx: LabContext) -> bool:
    """The reused databases are the lab's pair: the source replicates from nobody, the replica replicates from the
    source through the tunnel. An interrupted failover drill can leave them otherwise (the replica promoted, the
    source re-pointed), and its record on the gateway does not survive `lab down`."""
    src, rep = DATABASES["aws"]["host"], DATABASES["onprem"]["host"]
    source_status = ctx.sql(src, "SHOW SLAVE STATUS\\G", check=False, timeout=10)
    replica_status = ctx.sql(rep, "SHOW SLAVE STATUS\\G", check=False, timeout=10, column_names=True)
    return (source_status.returncode == 0 and not source_status.stdout.strip()
            and replica_status.returncode == 0
            and f"Master_Host: {DATABASES['aws']['ip']}" in replica_status.stdout)
