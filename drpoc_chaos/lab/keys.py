"""The lab's secrets and SSH keys, made once and kept across `lab down`/`lab up` under the state directory.

- secrets/: the MariaDB password of the `drpoc` user, the replication password and the IPsec PSK (root-only files);
- ssh/: the client key the inventory names, the authorized_keys every lab sshd reads, and a known_hosts that pins
  each host's key at its published 127.0.0.1 port;
- hosts/<host>/ssh_host_ed25519_key: one host key per lab host that runs sshd;
- home/<user>: the home directories of the two login users (uids of topology.py).
"""
from __future__ import annotations

import os
import secrets as _secrets
from pathlib import Path

from .system import run
from .topology import HOSTS, LOGIN_UID, LOGIN_USER, NOSUDO_UID, NOSUDO_USER, Host, Paths

SECRET_FILES = ("mysql_password", "repl_password", "psk")


def ensure_secrets_and_keys(p: Paths, hosts: tuple[Host, ...] = HOSTS) -> None:
    p.secrets.mkdir(parents=True, exist_ok=True)
    os.chmod(p.secrets, 0o700)
    for name in SECRET_FILES:
        f = p.secrets / name
        if not f.exists():
            f.write_text(_secrets.token_hex(16) + "\n")
            os.chmod(f, 0o600)
    p.ssh.mkdir(parents=True, exist_ok=True)
    os.chmod(p.ssh, 0o755)
    if not p.client_key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "drpoc-lab", "-f", str(p.client_key)])
    (p.ssh / "authorized_keys").write_text(Path(str(p.client_key) + ".pub").read_text())
    os.chmod(p.ssh / "authorized_keys", 0o644)
    home = p.state / "home"
    for user, uid in ((LOGIN_USER, LOGIN_UID), (NOSUDO_USER, NOSUDO_UID)):
        (home / user).mkdir(parents=True, exist_ok=True)
        os.chown(home / user, uid, uid)
    known = []
    for h in hosts:
        if not h.ssh_port:
            continue
        key = p.host_dir(h.name) / "ssh_host_ed25519_key"
        key.parent.mkdir(parents=True, exist_ok=True)
        if not key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", h.name, "-f", str(key)])
        pub = Path(str(key) + ".pub").read_text().split()
        known.append(f"[127.0.0.1]:{h.ssh_port} {pub[0]} {pub[1]}")
    p.known_hosts.write_text("\n".join(known) + "\n")


def write_mysql_tls(directory: Path, names: list[str], ips: list[str], days: int = 3650) -> None:
    """A fresh CA and a server certificate it signs, for MariaDB's `ssl_ca`/`ssl_cert`/`ssl_key` (ca.pem,
    server-cert.pem, server-key.pem in `directory`): the certificate names `names` (DNS) and `ips`, so a client that
    checks the server's identity accepts it at those addresses. ca-key.pem stays beside them (root only)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"drpoc MySQL CA {_secrets.token_hex(4)}")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    alt = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else ips[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "server-cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    for name, data in (("server-key.pem", pem_key(key)), ("ca-key.pem", pem_key(ca_key))):
        (directory / name).write_bytes(data)
        os.chmod(directory / name, 0o600)
