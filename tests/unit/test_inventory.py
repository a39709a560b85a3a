"""Inventory loading, validation and secret references (docs/INVENTORY.md)."""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
from pathlib import Path

import pytest
import yaml

from drpoc_chaos import inventory as inv
from drpoc_chaos.inventory import InventoryError, load_inventory, resolve_secret

HERE = Path(__file__).parent / "inventories"
LAB = HERE / "lab.yaml"
DOC = Path(__file__).parents[2] / "docs" / "INVENTORY.md"
SECRET = "s3cr3t-Pa55-do-not-print"


pytestmark = pytest.mark.usefixtures("clean_inventory_cache")


def lab_data() -> dict:
    return yaml.safe_load(LAB.read_text())


def write(tmp_path: Path, data, name="inventory.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def error_for(tmp_path, mutate) -> InventoryError:
    data = lab_data()
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert str(path) in str(caught.value)
    return caught.value


# --- the documented example -----------------------------------------------------------------------------------


def test_fixture_is_the_documented_example():
    block = re.search(r"```yaml\n(.*?)```", DOC.read_text(), re.S).group(1)
    assert block == LAB.read_text()


def test_lab_example_loads():
    i = load_inventory(LAB)
    assert i.name == "lab" and i.path == LAB.absolute()
    assert set(i.hosts) == {"aws-vpn", "aws-db", "onprem-vpn", "onprem-db"}
    vpn = i.host("aws-vpn")
    assert (vpn.address, vpn.port, vpn.user, vpn.sudo) == ("127.0.0.1", 2201, "drpoc", True)
    assert vpn.key_file == "/var/lib/drpoc-lab/ssh/id_ed25519"
    assert vpn.known_hosts == "/var/lib/drpoc-lab/ssh/known_hosts"
    assert (vpn.connect_timeout, vpn.command_timeout, vpn.jump) == (5.0, 30.0, None)

    assert i.gateway("aws") == inv.Gateway("aws", "aws-vpn", "onprem-aws", "10.20.0.0/16", "192.168.64.0/24")
    assert i.gateway("onprem").local_subnet == "192.168.64.0/24"
    src, rep = i.source, i.replica
    assert (src.site, src.role, src.host, src.address, src.port) == ("aws", "source", "aws-db", "127.0.0.1", 13306)
    assert (rep.site, rep.role, rep.port) == ("onprem", "replica", 13307)
    assert src.password_ref == {"file": "/var/lib/drpoc-lab/secrets/mysql_password"}
    assert (src.user, src.database, src.connect_timeout, src.via) == ("drpoc", "testdb", 5.0, None)
    assert i.drill == inv.DrillTarget("onprem-aws", "aws", "onprem")
    assert i.site("onprem").database is rep


def test_scope_is_json_safe_and_names_what_the_drill_touches():
    scope = load_inventory(LAB).scope()
    assert json.loads(json.dumps(scope)) == scope
    assert scope["inventory"] == "lab" and scope["inventory_path"] == str(LAB.absolute())
    assert scope["connection"] == "onprem-aws"
    assert (scope["fault_site"], scope["peer_site"]) == ("aws", "onprem")
    assert scope["gateways"] == {"aws": "aws-vpn 127.0.0.1:2201", "onprem": "onprem-vpn 127.0.0.1:2203"}
    assert scope["source"] == "aws-db 127.0.0.1:13306"
    assert scope["replica"] == "onprem-db 127.0.0.1:13307"
    assert scope["subnets"]["aws"] == {"local": "10.20.0.0/16", "remote": "192.168.64.0/24"}
    assert "password" not in json.dumps(scope) and "mysql_password" not in json.dumps(scope)


def test_real_sites_shape(monkeypatch):
    i = load_inventory(HERE / "real-sites.yaml")
    assert i.host("bastion").port == 22
    vpn = i.host("aws-vpn")
    assert (vpn.user, vpn.sudo, vpn.jump) == ("root", False, "bastion")
    assert vpn.jump_host == i.host("bastion")
    assert vpn.key_file == str(HERE / "keys" / "drpoc_ed25519")  # relative to the inventory's folder
    assert vpn.known_hosts == os.path.expanduser("~/drpoc/known_hosts")
    assert (vpn.connect_timeout, vpn.command_timeout) == (10.0, 60.0)
    assert i.host("onprem-db").command_timeout == 120.0
    assert (i.source.via, i.source.read_timeout, i.source.port) == ("aws-db", 10.0, 3306)
    assert i.replica.port == 3306 and i.replica.user == "monitor"
    assert i.replica.password_ref == {"env": "DRPOC_REPLICA_PASSWORD"}
    assert i.source.password_ref == {"secret": "mysql_password"}
    # no drill section: fault at the source's site, on its gateway's connection
    assert i.drill == inv.DrillTarget("onprem-aws", "aws", "onprem")
    assert i.scope()["source"] == "aws-db 127.0.0.1:3306 via aws-db"


def test_unknown_host_lists_the_known_names():
    with pytest.raises(InventoryError) as caught:
        load_inventory(LAB).host("aws-gw")
    message = str(caught.value)
    assert "'aws-gw'" in message and "aws-vpn, onprem-db, onprem-vpn" in message
    with pytest.raises(InventoryError, match="aws, onprem"):
        load_inventory(LAB).gateway("gcp")


# --- where the file is looked for -----------------------------------------------------------------------------


def test_path_resolution_order(tmp_path, monkeypatch):
    from_conf = write(tmp_path, lab_data() | {"name": "from-conf"}, "conf.yaml")
    from_env = write(tmp_path, lab_data() | {"name": "from-env"}, "env.yaml")
    monkeypatch.setenv("DRPOC_INVENTORY", str(from_env))
    assert load_inventory(configuration={"inventory": str(from_conf)}).name == "from-conf"
    assert load_inventory(configuration={}).name == "from-env"
    assert load_inventory(LAB, configuration={"inventory": str(from_conf)}).name == "lab"
    monkeypatch.delenv("DRPOC_INVENTORY")
    monkeypatch.setattr(inv.loader, "DEFAULT_LAB_INVENTORY", tmp_path / "absent" / "inventory.yaml")
    with pytest.raises(InventoryError) as caught:
        load_inventory()
    message = str(caught.value)
    assert str(tmp_path / "absent" / "inventory.yaml") in message
    assert "run `drpoc lab up` or set DRPOC_INVENTORY / the `inventory` configuration key" in message


def test_default_path_is_the_labs():
    assert inv.DEFAULT_LAB_INVENTORY == Path("/var/lib/drpoc-lab/inventory.yaml")


def test_cache_by_path_and_mtime(tmp_path):
    path = write(tmp_path, lab_data())
    first = load_inventory(path)
    assert load_inventory(path) is first
    data = lab_data()
    data["name"] = "changed-name"
    write(tmp_path, data)
    os.utime(path, ns=(1, os.stat(path).st_mtime_ns + 1_000_000_000))
    assert load_inventory(path).name == "changed-name"


# --- validation rules -----------------------------------------------------------------------------------------


def test_yaml_error_names_the_line():
    with pytest.raises(InventoryError) as caught:
        load_inventory(HERE / "bad-syntax.yaml")
    assert caught.value.line in (7, 8)
    assert "bad-syntax.yaml" in str(caught.value) and f"line {caught.value.line}" in str(caught.value)


def test_duplicate_keys_are_refused():
    with pytest.raises(InventoryError, match="duplicate key 'aws-vpn'") as caught:
        load_inventory(HERE / "duplicate-host.yaml")
    assert caught.value.line == 15


def two_sources(d):
    d["sites"]["onprem"]["database"]["role"] = "source"


def no_source(d):
    d["sites"]["aws"]["database"]["role"] = "replica"


@pytest.mark.parametrize("mutate, key, words", [
    (two_sources, "sites", "exactly one `source` database is needed, found 2 (aws, onprem)"),
    (no_source, "sites", "exactly one `source` database is needed, found 0"),
    (lambda d: d["sites"]["aws"]["database"].update(role="primary"), "sites.aws.database.role", "source or replica"),
    (lambda d: d["sites"]["aws"]["gateway"].update(host="aws-gw"), "sites.aws.gateway.host",
     "'aws-gw' is not a host of the inventory"),
    (lambda d: d["sites"]["onprem"]["database"].update(host="db9"), "sites.onprem.database.host", "not a host"),
    (lambda d: d["sites"]["aws"]["database"]["mysql"].update(via="nowhere"), "sites.aws.database.mysql.via",
     "'nowhere' is not a host"),
    (lambda d: d["hosts"]["aws-db"].update(jump="bastion"), "hosts.aws-db.jump", "'bastion' is not a host"),
    (lambda d: (d["hosts"]["aws-db"].update(jump="aws-vpn"), d["hosts"]["aws-vpn"].update(jump="aws-db")),
     "hosts.", "jump hosts loop"),
    (lambda d: d["sites"]["aws"]["gateway"].update(local_subnet="10.20.0.0/33"), "sites.aws.gateway.local_subnet",
     "is not a CIDR subnet"),
    (lambda d: d["sites"]["aws"]["gateway"].update(remote_subnet="192.168.64.7/24"),
     "sites.aws.gateway.remote_subnet", "host bits set; fix: write 192.168.64.0/24"),
    (lambda d: d["sites"]["onprem"]["gateway"].update(local_subnet="vpc"), "sites.onprem.gateway.local_subnet",
     "not a CIDR"),
    (lambda d: d["hosts"]["aws-vpn"].update(port=70000), "hosts.aws-vpn.port", "1–65535"),
    (lambda d: d["hosts"]["aws-vpn"].update(port=0), "hosts.aws-vpn.port", "1–65535"),
    (lambda d: d["hosts"]["aws-vpn"].update(port="22"), "hosts.aws-vpn.port", "1–65535"),
    (lambda d: d["sites"]["aws"]["database"]["mysql"].update(port=-1), "sites.aws.database.mysql.port", "1–65535"),
    (lambda d: d["mysql_defaults"].update(password="hunter2"), "mysql_defaults.password",
     "must be a reference, never a literal password"),
    (lambda d: d["mysql_defaults"].update(password={"vault": "x"}), "mysql_defaults.password",
     "exactly one of env, file, secret"),
    (lambda d: d["sites"]["aws"]["database"]["mysql"].update(password=12345), "sites.aws.database.mysql.password",
     "never a literal"),
    (lambda d: d["mysql_defaults"].pop("password"), "sites.aws.database.mysql.password", "no password reference"),
    (lambda d: d.update(version=2), "version", "unsupported version 2"),
    (lambda d: d.pop("version"), "version", "missing"),
    (lambda d: d["hosts"]["aws-vpn"].pop("address"), "hosts.aws-vpn.address", "missing"),
    (lambda d: d["hosts"]["aws-vpn"].update(adress="1.2.3.4"), "hosts.aws-vpn.adress", "unknown key"),
    (lambda d: d.update(extra=1), "extra", "unknown key"),
    (lambda d: d["ssh_defaults"].pop("user"), "hosts.aws-vpn.user", "no login user"),
    (lambda d: d["ssh_defaults"].update(connect_timeout=0), "ssh_defaults.connect_timeout", "positive number"),
    (lambda d: d["ssh_defaults"].update(sudo="yes"), "ssh_defaults.sudo", "true or false"),
    (lambda d: d["sites"]["aws"].pop("gateway"), "sites.aws.gateway", "missing"),
    (lambda d: d["sites"]["aws"]["gateway"].pop("connection"), "sites.aws.gateway.connection", "missing"),
    (lambda d: d["drill"].update(fault_site="gcp"), "drill.fault_site", "'gcp' is not a site"),
    (lambda d: d["drill"].update(peer_site="aws"), "drill.peer_site", "same site"),
    (lambda d: d.update(hosts={}), "hosts", "no hosts"),
])
def test_each_rule_names_the_key(tmp_path, mutate, key, words):
    error = error_for(tmp_path, mutate)
    assert error.key.startswith(key), error
    assert words in str(error)
    assert error.fix, "every error says how to fix it"


def test_error_message_shape(tmp_path):
    error = error_for(tmp_path, lambda d: d["sites"]["aws"]["gateway"].update(host="aws-gw"))
    path = tmp_path / "inventory.yaml"
    assert str(error).startswith(f"{path}: sites.aws.gateway.host (line ")
    assert "fix: add it under `hosts` or use one of aws-db, aws-vpn, onprem-db, onprem-vpn" in str(error)
    assert isinstance(error, ValueError)


def test_line_numbers_point_at_the_key(tmp_path):
    text = LAB.read_text().replace("port: 2203}", "port: 99999}")
    path = write(tmp_path, text)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    expected = next(n for n, line in enumerate(text.splitlines(), 1) if "99999" in line)
    assert caught.value.key == "hosts.onprem-vpn.port" and caught.value.line == expected


@pytest.mark.parametrize("text, words", [("", "empty"), ("- a\n- b\n", "must be a mapping"),
                                         ("version: 1\n", "`hosts:` section")])
def test_degenerate_files(tmp_path, text, words):
    with pytest.raises(InventoryError, match=re.escape(words)):
        load_inventory(write(tmp_path, text))


def test_literal_password_is_not_echoed(tmp_path):
    error = error_for(tmp_path, lambda d: d["mysql_defaults"].update(password=SECRET))
    assert SECRET not in str(error) and SECRET not in repr(error)


# --- secrets --------------------------------------------------------------------------------------------------


def test_resolve_env(monkeypatch):
    monkeypatch.setenv("DRPOC_TEST_PW", SECRET)
    assert resolve_secret({"env": "DRPOC_TEST_PW"}, None) == SECRET
    monkeypatch.delenv("DRPOC_TEST_PW")
    with pytest.raises(InventoryError, match="environment variable DRPOC_TEST_PW is not set"):
        resolve_secret({"env": "DRPOC_TEST_PW"}, None)


def test_resolve_file(tmp_path):
    path = tmp_path / "pw"
    path.write_text(f"  {SECRET}\n")
    assert resolve_secret({"file": str(path)}) == SECRET
    with pytest.raises(InventoryError, match="does not exist") as caught:
        resolve_secret({"file": str(tmp_path / "nope")})
    assert str(tmp_path / "nope") in str(caught.value)
    path.write_text("\n")
    with pytest.raises(InventoryError, match="is empty"):
        resolve_secret({"file": str(path)})
    if os.geteuid() != 0:
        path.write_text(SECRET)
        path.chmod(0)
        with pytest.raises(InventoryError, match="cannot read password file") as caught:
            resolve_secret({"file": str(path)})
        assert SECRET not in str(caught.value)


def test_resolve_chaos_secrets_flat_and_scoped():
    assert resolve_secret({"secret": "mysql_password"}, {"mysql_password": SECRET}) == SECRET
    assert resolve_secret({"secret": "mysql_password"}, {"mysql": {"mysql_password": SECRET}}) == SECRET
    both = {"a": {"pw": "one"}, "b": {"pw": "two"}}
    with pytest.raises(InventoryError, match="several scopes") as caught:
        resolve_secret({"secret": "pw"}, both)
    assert "one" not in str(caught.value) and "two" not in str(caught.value)
    assert resolve_secret({"secret": "b.pw"}, both) == "two"
    with pytest.raises(InventoryError, match=r"secret 'missing' not found \(secrets given: a, b\)"):
        resolve_secret({"secret": "missing"}, both)
    with pytest.raises(InventoryError, match="no secrets reached this activity: its provider lists no `secrets:`"):
        resolve_secret({"secret": "missing"}, None)


def test_resolve_rejects_non_references():
    for ref in (SECRET, {"env": "A", "file": "B"}, {"vault": "x"}, {}):
        with pytest.raises(InventoryError) as caught:
            resolve_secret(ref, {})
        assert SECRET not in str(caught.value)


def test_inventory_never_holds_secret_values(tmp_path, monkeypatch):
    pw = tmp_path / "pw"
    pw.write_text(SECRET)
    monkeypatch.setenv("DRPOC_REPLICA_PASSWORD", SECRET)
    data = lab_data()
    data["mysql_defaults"]["password"] = {"file": str(pw)}
    data["sites"]["onprem"]["database"]["mysql"]["password"] = {"env": "DRPOC_REPLICA_PASSWORD"}
    i = load_inventory(write(tmp_path, data))
    assert resolve_secret(i.source.password_ref) == SECRET
    assert resolve_secret(i.replica.password_ref) == SECRET
    for text in (repr(i), str(i), repr(i.source), str(i.source), repr(i.hosts), json.dumps(i.scope())):
        assert SECRET not in text


def test_inventory_objects_are_frozen():
    i = load_inventory(LAB)
    with pytest.raises(dataclasses.FrozenInstanceError):
        i.source.port = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        i.host("aws-vpn").address = "10.0.0.1"  # type: ignore[misc]


def test_mutating_the_loaded_fixture_does_not_leak(tmp_path):
    # error_for() and friends copy the data; the cache never returns an object built from another file
    a = load_inventory(LAB)
    data = copy.deepcopy(lab_data())
    data["name"] = "other"
    b = load_inventory(write(tmp_path, data))
    assert (a.name, b.name) == ("lab", "other")


# ------------------------------------------------------------------------------------------------ hostile files
BOMB = "\n".join(
    [f"a: &a {{{', '.join(f'{k}: x' for k in 'abcdefghi')}}}"]
    + [f"{n}: &{n} {{{', '.join(f'{k}: *{p}' for k in 'abcdefghi')}}}"
       for p, n in zip("abcdefgh", "bcdefghi", strict=True)]
) + "\n"


def test_alias_bomb_is_refused_fast_naming_the_file(tmp_path):
    import resource
    import time

    assert BOMB.count("\n") == 9  # the 9-line "billion laughs": 9**9 paths once expanded
    path = write(tmp_path, BOMB, "bomb.yaml")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    with pytest.raises(InventoryError) as err:
        load_inventory(path)
    assert time.perf_counter() - t < 1.0  # it took minutes and gigabytes before
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 100_000  # KB
    assert str(path) in str(err.value) and "alias" in str(err.value)


def test_recursive_alias_is_refused(tmp_path):
    with pytest.raises(InventoryError, match="alias"):
        load_inventory(write(tmp_path, "version: 1\nname: &n [1, *n]\n"))


def test_small_aliases_still_load_with_lines(tmp_path):
    text = LAB.read_text()
    data = lab_data()
    data["ssh_defaults"]["connect_timeout"] = 5
    path = write(tmp_path, data)
    text = path.read_text().replace("ssh_defaults:", "ssh_defaults: &ssh", 1)
    path.write_text(text)
    assert load_inventory(path).name == data["name"]


@pytest.mark.parametrize("kind", ["env", "secret", "file"])
def test_the_password_itself_as_a_reference_name_is_never_echoed(tmp_path, kind):
    secret = "Xy9!pQ2#zz-real-password"

    def mutate(d):
        d["mysql_defaults"]["password"] = {kind: secret}

    err = error_for(tmp_path, mutate)
    assert secret not in str(err) and secret[:6] not in str(err)
    assert "mysql_defaults.password" in str(err) and "not shown" in str(err)
    with pytest.raises(InventoryError) as err2:
        resolve_secret({kind: secret})
    assert secret not in str(err2.value)


def test_values_under_secret_keys_are_never_echoed_by_type_errors(tmp_path):
    def mutate(d):
        d["mysql_defaults"]["password"] = {"env": ["S3cr3tInAList"]}

    err = error_for(tmp_path, mutate)
    assert "S3cr3tInAList" not in str(err)


# --- what a failover drill needs: the replication account and each server's replication address ----------------

def test_replication_account_and_addresses(tmp_path):
    data = lab_data()
    data["replication"] = {"user": "repl", "password": {"env": "DRPOC_REPL_PASSWORD"}}
    data["sites"]["aws"]["database"]["mysql"].update(replication_address="10.20.11.123", replication_port=3307)
    i = load_inventory(write(tmp_path, data))
    assert i.replication.user == "repl" and i.replication.password_ref == {"env": "DRPOC_REPL_PASSWORD"}
    assert (i.source.replication_address, i.source.replication_port) == ("10.20.11.123", 3307)
    assert (i.replica.replication_address, i.replica.replication_port) == (None, 3306)
    assert load_inventory(LAB).replication is None  # optional: only the failover drill needs it


@pytest.mark.parametrize("mutate, key, words", [
    (lambda d: d.update(replication={"user": "repl", "password": "hunter2"}), "replication.password",
     "never a literal"),
    (lambda d: d.update(replication={"user": "repl;id", "password": {"env": "X"}}), "replication.user", "login name"),
    (lambda d: d.update(replication={"password": {"env": "X"}}), "replication.user", "missing"),
    (lambda d: d["sites"]["aws"]["database"]["mysql"].update(replication_address="x'; DROP"),
     "sites.aws.database.mysql.replication_address", "neither an IP address nor a host name"),
])
def test_replication_settings_are_checked(tmp_path, mutate, key, words):
    error = error_for(tmp_path, mutate)
    assert error.key == key and words in str(error), error
    assert "hunter2" not in str(error)
