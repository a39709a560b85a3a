"""Configuration files of the lab's daemons, as text. Pure functions: the lifecycle writes them and bind-mounts them
over /etc inside each host's own mount namespace, so the machine's own /etc is never changed."""
from __future__ import annotations

from .topology import (
    DATABASES,
    GATEWAYS,
    HELPER_DIR,
    HOSTS,
    LOGIN_UID,
    LOGIN_USER,
    NOSUDO_UID,
    NOSUDO_USER,
    GatewaySpec,
    ReplicaKnobs,
    spoke_child,
)


def ipsec_conf(site: str, gateway: GatewaySpec | None = None) -> str:
    """`gateway` defaults to the two-site lab's; a fleet hub gets one conn per spoke."""
    g = gateway or GATEWAYS[site]
    conns = "".join(f"""
conn {t['connection']}
    keyexchange=ikev2
    authby=psk
    left={g['wan_ip']}
    leftid={g['wan_ip']}
    leftsubnet={t['local']}
    right={t['peer_ip']}
    rightid={t['peer_ip']}
    rightsubnet={t['remote']}
    ike=aes256-sha256-modp2048!
    esp=aes256-sha256!
    forceencaps=yes
    dpddelay=10s
    dpdaction=restart
    # one keying try (default 3): a failing initiation gives up after one round of retransmits (~14 s), not ~45 s
    keyingtries=1
    auto={t['auto']}
""" for t in g["tunnels"])
    return f"""# drpoc lab: {g['host']} ({site} side of the seed's site-to-site VPN)
config setup
    charondebug="ike 1, knl 1, cfg 0"
    uniqueids=yes
{conns}"""


def ipsec_secrets(site: str, psk: str, gateway: GatewaySpec | None = None) -> str:
    g = gateway or GATEWAYS[site]
    return "".join(f'{g["wan_ip"]} {t["peer_ip"]} : PSK "{psk}"\n' for t in g["tunnels"])


def swanctl_conf(site: str, psk: str, child: str, gateway: GatewaySpec | None = None) -> str:
    """The same tunnels as ipsec_conf(), written for swanctl (strongSwan 6 style): same addresses, connection names,
    PSK and proposals; the seed's tunnel's child named `child`, a fleet spoke's `<connection>-net`. On-prem
    initiates when the config is loaded, AWS answers."""
    g = gateway or GATEWAYS[site]
    conns, secrets = [], []
    for i, t in enumerate(g["tunnels"]):
        start = "start" if t["auto"] == "start" else "none"
        # the seed's tunnel keeps `child`; a fleet spoke's is named as the lab names it, the same on both gateways
        name = child if t["spoke"] == 1 else spoke_child(t["spoke"], "swanctl")
        conns.append(f"""    {t['connection']} {{
        version = 2
        local_addrs = {g['wan_ip']}
        remote_addrs = {t['peer_ip']}
        proposals = aes256-sha256-modp2048
        encap = yes
        dpd_delay = 10s
        unique = replace
        # one keying try: a failing initiation gives up after one round of retransmits (~14 s), not ~45 s
        keyingtries = 1
        local {{
            auth = psk
            id = {g['wan_ip']}
        }}
        remote {{
            auth = psk
            id = {t['peer_ip']}
        }}
        children {{
            {name} {{
                local_ts = {t['local']}
                remote_ts = {t['remote']}
                esp_proposals = aes256-sha256
                dpd_action = restart
                start_action = {start}
            }}
        }}
    }}
""")
        secrets.append(f"""    ike-lab{'' if i == 0 else f'-{i + 1}'} {{
        id-local = {g['wan_ip']}
        id-remote = {t['peer_ip']}
        secret = "{psk}"
    }}
""")
    return (f"# drpoc lab: {g['host']} ({site} side of the seed's site-to-site VPN), swanctl.conf\n"
            "connections {\n" + "".join(conns) + "}\nsecrets {\n" + "".join(secrets) + "}\n")


def strongswan_conf(libipsec: bool, mode: str = "ipsec") -> str:
    # Debian's snippets come first; our settings after them win. kernel-libipsec does ESP in user space over a TUN
    # device when the kernel has no ESP (docs/LAB.md); Debian ships it with load = no. In swanctl mode the stroke
    # plugin is off, as on a strongSwan 6 build: only vici (swanctl) can drive the daemon.
    stroke = "\n        stroke {\n            load = no\n        }" if mode == "swanctl" else ""
    return f"""# drpoc lab strongswan.conf
charon {{
    load_modular = yes
    retransmit_timeout = 2.0
    retransmit_tries = 3
    retransmit_base = 1.4
    install_virtual_ip = no
    filelog {{
        lab {{
            path = /run/charon.log
            time_format = %b %e %T
            default = 1
            ike = 1
        }}
    }}
    plugins {{
        include strongswan.d/charon/*.conf
        kernel-libipsec {{
            load = {'yes' if libipsec else 'no'}
        }}{stroke}
    }}
}}
swanctl {{
    load = pem pkcs1 x509 revocation constraints pubkey openssl random
}}
include strongswan.d/*.conf
"""


MYSQL_TLS_DIR = "/etc/mysql/tls"  # inside a database host: its etc/mysql/tls on disk (bind-mounted /etc/mysql)


def mariadb_cnf(host: str, datadir: str, server_id: int, role: str, knobs: ReplicaKnobs) -> str:
    replica = ""
    if role == "replica":
        replica = f"""relay_log = relay-bin
slave_net_timeout = {knobs.net_timeout}
read_only = 1
"""
    return f"""# drpoc lab: MariaDB {role} on {host}
[client-server]
socket = /run/mysqld/mysqld.sock
port = 3306

[mysqld]
user = mysql
datadir = {datadir}
pid-file = /run/mysqld/mysqld.pid
# the host's own /run, not the machine's shared /tmp: a server starting up removes the #sql temporary files it finds
# in its tmpdir, and took those of another lab server bootstrapping at the same time
tmpdir = /run/mysqld
log_error = {datadir}/error.log
bind-address = 0.0.0.0
skip-name-resolve
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
server_id = {server_id}
log_bin = mysql-bin
binlog_format = ROW
log_slave_updates = 1
gtid_strict_mode = 1
innodb_buffer_pool_size = 32M
innodb_log_file_size = 16M
performance_schema = OFF
max_connections = 200
# TLS from a lab CA made at `lab up` (host_files.py); MariaDB refuses to start when these files are missing, and
# `FLUSH SSL` reloads them (tests/lab/test_mysql_tls.py swaps in a CA of its own that way)
ssl_ca = {MYSQL_TLS_DIR}/ca.pem
ssl_cert = {MYSQL_TLS_DIR}/server-cert.pem
ssl_key = {MYSQL_TLS_DIR}/server-key.pem
{replica}"""


def sshd_config(host_key: str, authorized_keys: str) -> str:
    return f"""# drpoc lab sshd: key authentication only, its own host key
Port 22
ListenAddress 0.0.0.0
HostKey {host_key}
PidFile /run/sshd.pid
AuthorizedKeysFile {authorized_keys}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
PrintMotd no
MaxSessions 50
MaxStartups 50:30:100
Subsystem sftp internal-sftp
"""


def hosts_file(host: str, databases: dict | None = None) -> str:
    """/etc/hosts of a lab host: itself and every database by its lab address (a fleet lab's `databases`)."""
    dbs = databases or DATABASES
    return f"127.0.0.1\tlocalhost\n127.0.1.1\t{host}\n" + "".join(f"{d['ip']}\t{d['host']}\n" for d in dbs.values())


def user_database(passwd: str, group: str, home: str) -> tuple[str, str, str]:
    """The machine's passwd/group plus the lab's two login users, and a shadow with no usable password at all
    (the lab's sshd takes keys only). Bind-mounted inside the lab hosts; the machine's files stay untouched."""
    keep_p = [line for line in passwd.splitlines() if line and line.split(":")[0] not in (LOGIN_USER, NOSUDO_USER)]
    keep_g = [line for line in group.splitlines() if line and line.split(":")[0] not in (LOGIN_USER, NOSUDO_USER)]
    keep_p += [f"{LOGIN_USER}:x:{LOGIN_UID}:{LOGIN_UID}:drpoc lab operator:{home}/{LOGIN_USER}:/bin/bash",
               f"{NOSUDO_USER}:x:{NOSUDO_UID}:{NOSUDO_UID}:drpoc lab user without sudo:{home}/{NOSUDO_USER}:/bin/bash"]
    keep_g += [f"{LOGIN_USER}:x:{LOGIN_UID}:", f"{NOSUDO_USER}:x:{NOSUDO_UID}:"]
    shadow = [f"{line.split(':')[0]}:*:19000:0:99999:7:::" for line in keep_p]
    return "\n".join(keep_p) + "\n", "\n".join(keep_g) + "\n", "\n".join(shadow) + "\n"


def sudoers() -> str:
    # Exactly the rule docs/REAL_HOSTS.md documents: the drill user may run the gateway helper as root and nothing
    # else (the helper exists on the gateways only). The other user must type a password for anything.
    return (f"# drpoc lab: the drill user may run the gateway helper, nothing else; the other user must type a "
            f"password\n"
            f"{LOGIN_USER} ALL=(root) NOPASSWD: {HELPER_DIR}/drpoc-gw\n"
            f"{NOSUDO_USER} ALL=(ALL:ALL) ALL\n")


def wan_counters_nft() -> str:
    """Counters on the WAN router: what crosses between the gateways. Replication must show up only as IKE (UDP 500)
    and ESP-in-UDP (4500), never as TCP 3306."""
    # one nft rule per line: the long IKE_SA_INIT rule is split between two string literals, not between lines
    return """table inet drpoc_wan
delete table inet drpoc_wan
table inet drpoc_wan {
    counter tcp_3306 { }
    counter udp_500 { }
    counter udp_4500 { }
    counter other { }
    counter ike_init_dropped { }
    # (initiator, responder) pairs whose new IKE_SA_INIT requests are dropped, with a timeout: the lab's way to
    # emulate a gateway behind NAT that accepts no inbound IKE (the seed's one-sided recovery symptom)
    set ike_init_blocked { type ipv4_addr . ipv4_addr; flags timeout; }
    chain forward {
        type filter hook forward priority 0; policy accept;
        ip saddr . ip daddr @ike_init_blocked udp dport 500 @th,208,8 34 @th,216,8 & 0x28 == 0x08 """ \
        """counter name "ike_init_dropped" drop
        tcp dport 3306 counter name "tcp_3306"
        tcp sport 3306 counter name "tcp_3306"
        udp dport 500 counter name "udp_500" accept
        udp dport 4500 counter name "udp_4500" accept
        counter name "other"
    }
}
"""


def replica_bootstrap_sql(source_ip: str, repl_password: str, knobs: ReplicaKnobs) -> str:
    return f"""STOP SLAVE;
CHANGE MASTER TO MASTER_HOST='{source_ip}', MASTER_PORT=3306, MASTER_USER='repl',
  MASTER_PASSWORD='{repl_password}', MASTER_USE_GTID=slave_pos,
  MASTER_CONNECT_RETRY={knobs.connect_retry}, MASTER_HEARTBEAT_PERIOD={knobs.heartbeat_period};
SET GLOBAL slave_net_timeout={knobs.net_timeout};
START SLAVE;
"""


def replica_knobs_sql(knobs: ReplicaKnobs) -> str:
    """Apply (possibly changed) knobs to an existing replica without touching its position or credentials."""
    return f"""STOP SLAVE;
SET GLOBAL slave_net_timeout={knobs.net_timeout};
CHANGE MASTER TO MASTER_CONNECT_RETRY={knobs.connect_retry}, MASTER_HEARTBEAT_PERIOD={knobs.heartbeat_period};
START SLAVE;
"""


def source_bootstrap_sql(db_password: str, repl_password: str) -> str:
    return f"""CREATE USER IF NOT EXISTS 'repl'@'%' IDENTIFIED BY '{repl_password}';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';
CREATE USER IF NOT EXISTS 'drpoc'@'%' IDENTIFIED BY '{db_password}';
GRANT ALL PRIVILEGES ON *.* TO 'drpoc'@'%';
CREATE DATABASE IF NOT EXISTS testdb;
CREATE TABLE IF NOT EXISTS testdb.ping (
  id INT AUTO_INCREMENT PRIMARY KEY,
  msg VARCHAR(50),
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
CREATE DATABASE IF NOT EXISTS drpoc;
CREATE TABLE IF NOT EXISTS drpoc.heartbeat (
  ts VARCHAR(26) NOT NULL,
  server_id INT UNSIGNED NOT NULL PRIMARY KEY,
  file VARCHAR(255) DEFAULT NULL,
  position BIGINT UNSIGNED DEFAULT NULL,
  relay_master_log_file VARCHAR(255) DEFAULT NULL,
  exec_master_log_pos BIGINT UNSIGNED DEFAULT NULL
);
"""


def lab_hostnames(hosts=HOSTS) -> list[str]:
    return [h.name for h in hosts]
