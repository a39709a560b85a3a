"""MySQL client habits in the inventory — TLS (`ssl:`), an option file, the heartbeat table — checked when the
inventory is loaded, and what they become for PyMySQL (items 4 and 5 of "Install it like a product"). The real
connections are in tests/lab/test_mysql_tls.py and tests/lab/test_pt_heartbeat.py."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pymysql
import pytest
import yaml

from drpoc_chaos import inventory as inv
from drpoc_chaos.db import client_options, db_error
from drpoc_chaos.inventory import Heartbeat, InventoryError, MysqlTls, load_inventory

LAB = Path(__file__).parent / "inventories" / "lab.yaml"


@pytest.fixture(autouse=True)
def _clean():
    inv.clear_cache()
    yield
    inv.clear_cache()


@pytest.fixture
def files(tmp_path):
    for name in ("ca.pem", "client-cert.pem", "client-key.pem"):
        (tmp_path / name).write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "my.cnf").write_text("[client]\nuser = ops\npassword = from-the-file\n[drpoc]\nuser = other\n")
    return tmp_path


def load(tmp_path: Path, mutate) -> inv.Inventory:
    data = yaml.safe_load(LAB.read_text())
    mutate(data)
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_inventory(path)


def error(tmp_path: Path, mutate) -> str:
    with pytest.raises(InventoryError) as caught:
        load(tmp_path, mutate)
    return str(caught.value)


def test_defaults_change_nothing(tmp_path):
    i = load(tmp_path, lambda d: None)
    assert i.heartbeat == Heartbeat("drpoc.heartbeat", "drpoc")
    assert i.source.ssl is None and i.source.option_file is None and client_options(i.source) == {}


def test_tls_relative_paths_and_defaults(tmp_path, files):
    i = load(tmp_path, lambda d: d["mysql_defaults"].update(ssl={"ca": "ca.pem"}))
    assert i.source.ssl == i.replica.ssl == MysqlTls(ca=str(files / "ca.pem"))
    assert client_options(i.source) == {"ssl_ca": str(files / "ca.pem"), "ssl_verify_cert": True,
                                        "ssl_verify_identity": True}


def test_tls_client_certificate_and_identity_off_per_database(tmp_path, files):
    def mutate(d):
        d["sites"]["onprem"]["database"]["mysql"]["ssl"] = {
            "ca": str(files / "ca.pem"), "cert": "client-cert.pem", "key": "client-key.pem", "verify_identity": False}
    i = load(tmp_path, mutate)
    assert i.source.ssl is None
    assert client_options(i.replica) == {"ssl_ca": str(files / "ca.pem"), "ssl_verify_cert": True,
                                         "ssl_verify_identity": False, "ssl_cert": str(files / "client-cert.pem"),
                                         "ssl_key": str(files / "client-key.pem")}


@pytest.mark.parametrize("ssl, expected", [
    ({"cert": "client-cert.pem", "key": "client-key.pem"}, r"mysql_defaults.ssl.ca.*: missing: TLS without checking"),
    ({"ca": "nope.pem"}, r"mysql_defaults.ssl.ca.*nope.pem does not exist or is not a file; fix: fix the path"),
    ({"ca": "ca.pem", "cert": "client-cert.pem"}, r"mysql_defaults.ssl.key.*needs both cert and key"),
    ({"ca": "ca.pem", "verify": False}, r"mysql_defaults.ssl.verify.*unknown key"),
    ({"ca": "ca.pem", "verify_identity": "no"}, r"verify_identity.*must be true or false"),
    ("yes", r"mysql_defaults.ssl.*must be a mapping"),
])
def test_tls_errors_name_the_key_and_the_fix(tmp_path, files, ssl, expected):
    import re
    assert re.search(expected, error(tmp_path, lambda d: d["mysql_defaults"].update(ssl=ssl)))


def test_tls_through_an_ssh_channel_is_refused(tmp_path, files):
    def mutate(d):
        d["sites"]["aws"]["database"]["mysql"].update(via="aws-db", ssl={"ca": "ca.pem"})
    assert "sites.aws.database.mysql.ssl" in error(tmp_path, mutate)


def test_unreadable_tls_file_is_refused(tmp_path, files):
    import os
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    (files / "ca.pem").chmod(0)
    assert "not readable" in error(tmp_path, lambda d: d["mysql_defaults"].update(ssl={"ca": "ca.pem"}))


def test_option_file_may_hold_user_and_password(tmp_path, files):
    def mutate(d):
        d["mysql_defaults"] = {"option_file": "my.cnf", "option_group": "drpoc", "database": "testdb"}
    i = load(tmp_path, mutate)
    assert i.source.password_ref is None and i.source.user == ""
    assert client_options(i.source) == {"read_default_file": str(files / "my.cnf"), "read_default_group": "drpoc"}


def test_option_file_group_defaults_to_client_and_inventory_values_win(tmp_path, files):
    i = load(tmp_path, lambda d: d["mysql_defaults"].update(option_file=str(files / "my.cnf")))
    assert i.source.option_group == "client" and i.source.user == "drpoc" and i.source.password_ref is not None


def test_option_file_missing_is_refused(tmp_path):
    text = error(tmp_path, lambda d: d["mysql_defaults"].update(option_file="absent.cnf"))
    assert "mysql_defaults.option_file" in text and "absent.cnf does not exist" in text


def test_without_option_file_user_and_password_stay_required(tmp_path):
    assert "no password reference" in error(tmp_path, lambda d: d["mysql_defaults"].pop("password"))


def test_heartbeat_table_and_format(tmp_path):
    i = load(tmp_path, lambda d: d.update(heartbeat={"table": "percona.heartbeat", "format": "pt-heartbeat"}))
    assert i.heartbeat == Heartbeat("percona.heartbeat", "pt-heartbeat")


@pytest.mark.parametrize("heartbeat, expected", [
    ({"table": "heartbeat"}, r"heartbeat.table \(line \d+\): 'heartbeat' is not schema.table"),
    ({"table": "percona.heart beat"}, "is not schema.table"),
    ({"table": "x.y; DROP TABLE z"}, "is not schema.table"),
    ({"format": "mk-heartbeat"}, r"heartbeat.format \(line \d+\): 'mk-heartbeat' is not a heartbeat format"),
    ({"tabel": "a.b"}, r"heartbeat.tabel \(line \d+\): unknown key"),
])
def test_heartbeat_errors(tmp_path, heartbeat, expected):
    import re
    assert re.search(expected, error(tmp_path, lambda d: d.update(heartbeat=heartbeat)))


def test_tls_failures_say_what_to_do(tmp_path, files):
    i = load(tmp_path, lambda d: d["mysql_defaults"].update(ssl={"ca": "ca.pem"}))
    untrusted = pymysql.err.OperationalError(2003, "Can't connect to MySQL server on '127.0.0.1' ([SSL: "
                                             "CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed "
                                             "certificate in certificate chain (_ssl.c:1006))")
    assert f"not signed by ssl.ca {files / 'ca.pem'}" in str(db_error(untrusted, i.source, "CONNECT"))
    wrong_name = pymysql.err.OperationalError(2003, "Can't connect ([SSL: CERTIFICATE_VERIFY_FAILED] certificate "
                                              "verify failed: IP address mismatch, certificate is not valid for "
                                              "'127.0.0.1'. (_ssl.c:1006))")
    assert "does not name 127.0.0.1 (verify_identity)" in str(db_error(wrong_name, i.source, "CONNECT"))
    plain = dataclasses.replace(i.source, ssl=None)
    assert "is the lab up" in str(db_error(untrusted, plain, "CONNECT"))


def test_lab_mysql_serves_tls_from_files_made_at_lab_up(tmp_path):
    """The lab's my.cnf names the TLS files (MariaDB does not start without them); write_mysql_tls makes a CA and a
    server certificate it signed, naming the host, its address and 127.0.0.1."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    from drpoc_chaos.lab import configs
    from drpoc_chaos.lab.keys import write_mysql_tls
    from drpoc_chaos.lab.topology import ReplicaKnobs

    cnf = configs.mariadb_cnf("aws-db", "/data/aws-db", 1, "source", ReplicaKnobs())
    for line in ("ssl_ca = /etc/mysql/tls/ca.pem", "ssl_cert = /etc/mysql/tls/server-cert.pem",
                 "ssl_key = /etc/mysql/tls/server-key.pem"):
        assert line in cnf.splitlines()
    write_mysql_tls(tmp_path, ["aws-db"], ["10.20.11.123", "127.0.0.1"])
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    cert = x509.load_pem_x509_certificate((tmp_path / "server-cert.pem").read_bytes())
    assert cert.issuer == ca.subject
    ca_key = ca.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["aws-db"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.20.11.123"),
                                                          ipaddress.ip_address("127.0.0.1")]
    assert oct((tmp_path / "server-key.pem").stat().st_mode & 0o777) == "0o600"
