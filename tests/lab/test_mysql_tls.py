"""MySQL client habits against the lab's MariaDB: TLS from a CA this test generates — swapped into the source's
ssl_ca/ssl_cert/ssl_key files and loaded with `FLUSH SSL` — checked with verify_identity; a wrong CA and a
certificate that does not name the address are refused with a clear error; an option file supplies user and
password. The lab's own certificate is put back (and reloaded) afterwards."""
from __future__ import annotations

import shutil
from pathlib import Path

import pymysql
import pytest

from drpoc_chaos import db
from drpoc_chaos.inventory import clear_cache, load_inventory
from drpoc_chaos.lab.keys import write_mysql_tls
from drpoc_chaos.lab.topology import HOSTS_BY_NAME, SOURCE_IP, Paths

from .support import variant

pytestmark = pytest.mark.lab
SOURCE_PORT = HOSTS_BY_NAME["aws-db"].mysql_port
SERVER_FILES = ("ca.pem", "server-cert.pem", "server-key.pem")


def lab_tls_dir() -> Path:
    return Paths().host_etc("aws-db") / "mysql" / "tls"  # /etc/mysql/tls inside aws-db (lab/configs.py)


def flush_ssl() -> None:
    password = (Paths().secrets / "mysql_password").read_text().strip()
    with pymysql.connect(host="127.0.0.1", port=SOURCE_PORT, user="drpoc", password=password,
                         connect_timeout=5) as c, c.cursor() as cur:
        cur.execute("FLUSH SSL")


def install(directory: Path) -> None:
    for name in SERVER_FILES:
        shutil.copyfile(directory / name, lab_tls_dir() / name)
    shutil.chown(lab_tls_dir() / "server-key.pem", user="mysql", group="mysql")
    flush_ssl()


@pytest.fixture
def source_tls(ready, tmp_path):
    """The source serving a certificate from a CA made here; the lab's own put back afterwards."""
    assert (lab_tls_dir() / "server-cert.pem").exists(), "the lab's my.cnf names TLS files made at `lab up`"
    saved = tmp_path / "lab-tls"
    saved.mkdir()
    for name in SERVER_FILES:
        shutil.copy2(lab_tls_dir() / name, saved / name)
    ours = tmp_path / "ours"
    write_mysql_tls(ours, ["aws-db"], ["127.0.0.1", SOURCE_IP])
    install(ours)
    try:
        yield ours
    finally:
        install(saved)


def source_only(tmp_path: Path, name: str, **mysql) -> dict:
    return variant(tmp_path, name, lambda d: d["sites"]["aws"]["database"]["mysql"].update(mysql))


def test_tls_with_verify_identity_from_the_tests_ca(source_tls, tmp_path):
    clear_cache()
    inv = load_inventory(configuration=source_only(tmp_path, "tls", ssl={"ca": str(source_tls / "ca.pem")}))
    assert inv.source.ssl is not None and inv.source.ssl.verify_identity
    rows = db.execute(inv.source, inv, "SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')")
    status = {r["Variable_name"]: r["Value"] for r in rows}
    assert status["Ssl_version"].startswith("TLSv1.") and status["Ssl_cipher"], status
    # the drill's own statements go over it too
    assert db.execute(inv.source, inv, "SELECT COUNT(*) AS n FROM testdb.ping")[0]["n"] >= 0


def test_a_wrong_ca_is_refused_with_what_to_do(source_tls, tmp_path):
    other = tmp_path / "other"
    write_mysql_tls(other, ["aws-db"], ["127.0.0.1"])
    clear_cache()
    inv = load_inventory(configuration=source_only(tmp_path, "wrong-ca", ssl={"ca": str(other / "ca.pem")}))
    with pytest.raises(db.DbError) as caught:
        db.execute(inv.source, inv, "SELECT 1")
    text = str(caught.value)
    assert "CERTIFICATE_VERIFY_FAILED" in text and f"not signed by ssl.ca {other / 'ca.pem'}" in text
    assert caught.value.verb == "CONNECT"


def test_a_certificate_that_does_not_name_the_address_is_refused(ready, tmp_path):
    saved = tmp_path / "lab-tls"
    saved.mkdir()
    for name in SERVER_FILES:
        shutil.copy2(lab_tls_dir() / name, saved / name)
    named = tmp_path / "named"
    write_mysql_tls(named, ["aws-db"], [SOURCE_IP])  # not 127.0.0.1, where the relay publishes it
    install(named)
    try:
        clear_cache()
        strict = load_inventory(configuration=source_only(tmp_path, "strict", ssl={"ca": str(named / "ca.pem")}))
        with pytest.raises(db.DbError, match="does not name 127.0.0.1 \\(verify_identity\\)"):
            db.execute(strict.source, strict, "SELECT 1")
        lenient = load_inventory(configuration=source_only(
            tmp_path, "lenient", ssl={"ca": str(named / "ca.pem"), "verify_identity": False}))
        assert db.execute(lenient.source, lenient, "SELECT 1 AS one")[0]["one"] == 1
    finally:
        install(saved)


def test_option_file_supplies_user_and_password(ready, tmp_path):
    password = (Paths().secrets / "mysql_password").read_text().strip()
    cnf = tmp_path / "client.cnf"
    cnf.write_text(f"[client]\nuser = drpoc\npassword = {password}\n")
    cnf.chmod(0o600)

    def mutate(d):
        d["mysql_defaults"] = {"option_file": str(cnf), "database": "testdb"}
    clear_cache()
    inv = load_inventory(configuration=variant(tmp_path, "option-file", mutate))
    assert inv.source.password_ref is None
    assert db.execute(inv.source, inv, "SELECT CURRENT_USER() AS u")[0]["u"].startswith("drpoc@")
    assert db.execute(inv.replica, inv, "SELECT @@server_id AS id")[0]["id"] == 2
