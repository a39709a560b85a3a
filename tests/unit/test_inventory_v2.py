"""Inventory version 2: fleets of sites and replication pairs (docs/INVENTORY.md, "Version 2: fleets")."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from drpoc_chaos import inventory as inv
from drpoc_chaos.inventory import Fleet, InventoryError, load_fleet, load_inventory, parse_fleet, parse_inventory

HERE = Path(__file__).parent / "inventories"
LAB = HERE / "lab.yaml"
DOC = Path(__file__).parents[2] / "docs" / "INVENTORY.md"
SPOKES = ("onprem", "dc2", "dc3")


pytestmark = pytest.mark.usefixtures("clean_inventory_cache")


def side(connection: str, local: str, remote: str, **extra) -> dict:
    return {"connection": connection, "local_subnet": local, "remote_subnet": remote, **extra}


def fleet_data(spokes=SPOKES) -> dict:
    """An AWS hub and one on-prem site per spoke, one pair per spoke (the hub's database is every pair's source)."""
    hosts = {"aws-vpn": {"address": "127.0.0.1", "port": 2201}, "aws-db": {"address": "127.0.0.1", "port": 2202}}
    sites: dict = {"aws": {"gateway": {"host": "aws-vpn", "control": "swanctl"},
                           "database": {"host": "aws-db", "mysql": {"address": "127.0.0.1", "port": 13306}},
                           "work_pool": "drpoc-aws"}}
    pairs: dict = {}
    for n, spoke in enumerate(spokes, 1):
        hosts[f"{spoke}-vpn"] = {"address": "127.0.0.1", "port": 2210 + 2 * n}
        hosts[f"{spoke}-db"] = {"address": "127.0.0.1", "port": 2211 + 2 * n}
        sites[spoke] = {"gateway": {"host": f"{spoke}-vpn"},
                        "database": {"host": f"{spoke}-db", "mysql": {"address": "127.0.0.1", "port": 13306 + n}}}
        net = f"192.168.{63 + n}.0/24"
        pairs[spoke] = {"source": "aws", "replica": spoke,
                        "tunnel": {"aws": side(f"{spoke}-aws", "10.20.0.0/16", net),
                                   spoke: side(f"{spoke}-aws", net, "10.20.0.0/16")}}
    return {
        "version": 2,
        "name": "fleet-lab",
        "ssh_defaults": {"user": "drpoc", "connect_timeout": 5},
        "hosts": hosts,
        "mysql_defaults": {"user": "drpoc", "password": {"env": "DRPOC_TEST_MYSQL_PASSWORD"}, "database": "testdb"},
        "heartbeat": {"table": "percona.heartbeat", "format": "pt-heartbeat"},
        "replication": {"user": "repl", "password": {"env": "DRPOC_TEST_REPL_PASSWORD"}},
        "sites": sites,
        "pairs": pairs,
    }


def write(tmp_path: Path, data, name="fleet.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def refused(tmp_path: Path, mutate, key: str, words: str, at: str | None = None) -> InventoryError:
    """The error for fleet_data() changed by `mutate`: its key path is `key`, it says `words` and a fix, names the
    file, and its line is the one holding `at` (default: the key path's last part)."""
    data = copy.deepcopy(fleet_data())
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(InventoryError) as caught:
        load_fleet(path)
    error = caught.value
    assert error.key == key, error
    assert words in str(error), error
    assert error.fix, error
    assert str(error).startswith(f"{path}: {key} (line {error.line}): ")
    lines = path.read_text().splitlines()
    assert error.line is not None and 1 <= error.line <= len(lines)
    assert (at or key.rsplit(".", 1)[-1]) in lines[error.line - 1], (error.line, lines[error.line - 1])
    return error


# --- version 1 is a fleet of one pair ------------------------------------------------------------------------


def test_a_version_1_file_is_a_one_pair_fleet_named_after_its_replica_site():
    fleet = load_fleet(LAB)
    assert isinstance(fleet, Fleet)
    assert (fleet.name, fleet.version, fleet.path) == ("lab", 1, LAB.absolute())
    assert list(fleet.pairs) == ["onprem"]
    view = fleet.pairs["onprem"]
    assert view is load_inventory(LAB)  # the same cached object
    assert (view.pair, view.version, view.work_pool) == ("onprem", 1, None)
    assert view.scope()["pair"] == "onprem"
    assert set(fleet.sites) == {"aws", "onprem"}
    assert (fleet.sites["aws"].gateway_host, fleet.sites["aws"].database_host) == ("aws-vpn", "aws-db")
    assert fleet.sites["onprem"].work_pool is None
    assert fleet.gateway_hosts("onprem") == {"aws-vpn", "onprem-vpn"}
    assert fleet.fault_gateway("onprem") == "aws-vpn"
    assert fleet.others("onprem") == []


def test_a_version_1_file_accepts_its_own_pair_name_only():
    assert load_inventory(LAB, pair="onprem") is load_inventory(LAB)
    assert load_inventory(LAB, configuration={"pair": "onprem"}).pair == "onprem"
    with pytest.raises(InventoryError) as caught:
        load_inventory(LAB, pair="aws")
    assert "no pair 'aws'" in str(caught.value) and "1 pair (onprem)" in str(caught.value)
    assert str(LAB.absolute()) in str(caught.value)


def test_version_1_pair_follows_the_replica_whatever_the_sites_are_called(tmp_path):
    data = yaml.safe_load(LAB.read_text())
    data["sites"]["dc1"] = data["sites"].pop("onprem")
    data["drill"]["peer_site"] = "dc1"
    view = load_inventory(write(tmp_path, data))
    assert view.pair == "dc1" and view.replica.site == "dc1"
    assert parse_inventory(LAB.read_text(), LAB).pair == "onprem"


# --- a hub and three spokes ----------------------------------------------------------------------------------


def test_hub_and_three_spokes_load_as_pair_views(tmp_path):
    fleet = load_fleet(write(tmp_path, fleet_data()))
    assert (fleet.name, fleet.version) == ("fleet-lab", 2)
    assert list(fleet.pairs) == list(SPOKES)  # file order
    for n, spoke in enumerate(SPOKES, 1):
        view = fleet.pair(spoke)
        net = f"192.168.{63 + n}.0/24"
        assert (view.pair, view.version, view.name) == (spoke, 2, "fleet-lab")
        assert list(view.sites) == ["aws", spoke]
        assert set(view.hosts) == set(fleet_data()["hosts"])  # every host, not only the pair's
        hub, far = view.gateway("aws"), view.gateway(spoke)
        assert hub == inv.Gateway("aws", "aws-vpn", f"{spoke}-aws", "10.20.0.0/16", net, control="swanctl")
        assert far == inv.Gateway(spoke, f"{spoke}-vpn", f"{spoke}-aws", net, "10.20.0.0/16")
        assert (view.source.site, view.source.role, view.source.host, view.source.port) == \
            ("aws", "source", "aws-db", 13306)
        assert (view.replica.site, view.replica.role, view.replica.host, view.replica.port) == \
            (spoke, "replica", f"{spoke}-db", 13306 + n)
        assert view.replica.password_ref == {"env": "DRPOC_TEST_MYSQL_PASSWORD"}
        # no drill block: as in version 1, the fault is at the source's site, on its side's connection
        assert view.drill == inv.DrillTarget(f"{spoke}-aws", "aws", spoke)
        assert view.resolve_site("replica") == spoke and view.resolve_site("fault") == "aws"
        assert view.heartbeat == inv.Heartbeat("percona.heartbeat", "pt-heartbeat")
        assert view.replication is not None and view.replication.user == "repl"
        assert view.work_pool == "drpoc-aws"
        scope = view.scope()
        assert json.loads(json.dumps(scope)) == scope
        assert scope["pair"] == spoke and scope["connections"] == {"aws": f"{spoke}-aws", spoke: f"{spoke}-aws"}
        assert scope["subnets"][spoke] == {"local": net, "remote": "10.20.0.0/16"}
    assert fleet.gateway_hosts("dc2") == {"aws-vpn", "dc2-vpn"}
    assert fleet.fault_gateway("dc2") == "aws-vpn"
    assert [o.pair for o in fleet.others("dc2")] == ["onprem", "dc3"]
    assert fleet.sites["aws"].control == "swanctl" and fleet.sites["dc3"].database_host == "dc3-db"


def test_a_drill_block_per_pair(tmp_path):
    data = fleet_data()
    data["pairs"]["dc2"]["drill"] = {"fault_site": "dc2", "connection": "dc2-aws-alt"}
    fleet = load_fleet(write(tmp_path, data))
    assert fleet.pair("dc2").drill == inv.DrillTarget("dc2-aws-alt", "dc2", "aws")
    assert fleet.fault_gateway("dc2") == "dc2-vpn"
    assert fleet.pair("onprem").drill.fault_site == "aws"


def test_child_control_and_helper_reach_the_pair_view(tmp_path):
    data = fleet_data()
    data["sites"]["dc2"]["gateway"].update(control="ipsec", helper="/opt/drpoc/drpoc-gw")
    data["pairs"]["dc2"]["tunnel"]["aws"]["child"] = "dc2-aws-net"
    view = load_inventory(write(tmp_path, data), pair="dc2")
    assert view.gateway("aws").child == "dc2-aws-net" and view.gateway("aws").connection == "dc2-aws"
    assert view.gateway("dc2").child == "dc2-aws"
    assert (view.gateway("dc2").control, view.gateway("dc2").helper) == ("ipsec", "/opt/drpoc/drpoc-gw")


def test_a_transit_site_without_a_database_is_fine_until_a_pair_names_it(tmp_path):
    data = fleet_data()
    data["hosts"]["transit-vpn"] = {"address": "10.0.0.9"}
    data["sites"]["transit"] = {"gateway": {"host": "transit-vpn"}}
    fleet = load_fleet(write(tmp_path, data))
    assert fleet.sites["transit"].database_host is None and "transit" not in fleet.pairs


def test_a_gateway_host_shared_by_sites_with_distinct_connections(tmp_path):
    # two application pairs behind one pair of gateways: each pair its own connection on each gateway host
    data = fleet_data(spokes=("onprem",))
    data["hosts"]["app2-db"] = {"address": "127.0.0.1", "port": 2299}
    data["sites"]["aws-app2"] = {"gateway": {"host": "aws-vpn"},
                                 "database": {"host": "app2-db", "mysql": {"address": "127.0.0.1", "port": 33070}}}
    data["sites"]["onprem-app2"] = {"gateway": {"host": "onprem-vpn"},
                                    "database": {"host": "app2-db", "mysql": {"address": "127.0.0.1", "port": 33071}}}
    data["pairs"]["app2"] = {"source": "aws-app2", "replica": "onprem-app2", "tunnel": {
        "aws-app2": side("app2-aws", "10.21.0.0/16", "192.168.70.0/24"),
        "onprem-app2": side("app2-aws", "192.168.70.0/24", "10.21.0.0/16")}}
    fleet = load_fleet(write(tmp_path, data))
    assert fleet.gateway_hosts("app2") == fleet.gateway_hosts("onprem") == {"aws-vpn", "onprem-vpn"}
    assert fleet.pair("app2").gateway("aws-app2").host == "aws-vpn"
    assert fleet.pair("app2").work_pool is None  # neither of its sites names one

    data["pairs"]["app2"]["tunnel"]["aws-app2"]["connection"] = "onprem-aws"  # the other pair's, same host
    with pytest.raises(InventoryError) as caught:
        load_fleet(write(tmp_path, data))
    error = caught.value
    assert error.key == "pairs.app2.tunnel.aws-app2.connection" and error.line
    assert "pairs onprem and app2 both use connection 'onprem-aws' on gateway host 'aws-vpn'" in str(error)


# --- choosing the pair ---------------------------------------------------------------------------------------


def test_pair_from_argument_then_configuration_then_the_only_one(tmp_path):
    path = write(tmp_path, fleet_data())
    assert load_inventory(path, pair="dc2").pair == "dc2"
    assert load_inventory(configuration={"inventory": str(path), "pair": "dc3"}).pair == "dc3"
    assert load_inventory(path, configuration={"pair": "dc3"}, pair="onprem").pair == "onprem"  # argument wins
    assert load_inventory(path, pair="dc2") is load_fleet(path).pairs["dc2"]
    one = write(tmp_path, fleet_data(spokes=("dc7",)), "one.yaml")
    assert load_inventory(one).pair == "dc7"
    assert parse_inventory(one.read_text(), one).pair == "dc7"


def test_several_pairs_and_none_chosen(tmp_path):
    path = write(tmp_path, fleet_data())
    for call in (lambda: load_inventory(path), lambda: load_inventory(path, configuration={"pair": ""}),
                 lambda: parse_inventory(path.read_text(), path)):
        with pytest.raises(InventoryError) as caught:
            call()
        message = str(caught.value)
        assert "this inventory holds 3 pairs (onprem, dc2, dc3): choose one" in message
        assert caught.value.fix.startswith("set the `pair` configuration key (chaos run --var pair=NAME")
        assert str(path) in message


def test_an_unknown_pair_lists_the_pairs(tmp_path):
    path = write(tmp_path, fleet_data())
    with pytest.raises(InventoryError) as caught:
        load_inventory(path, configuration={"pair": "dc9"})
    assert "no pair 'dc9' (from configuration key `pair`)" in str(caught.value)
    assert "onprem, dc2, dc3" in str(caught.value)
    with pytest.raises(InventoryError, match="onprem, dc2, dc3"):
        load_fleet(path).pair("dc9")
    with pytest.raises(InventoryError, match="no pair 'dc9'"):
        load_fleet(path).others("dc9")


@pytest.mark.parametrize("hostile", ["--help", "a;b", "x" * 10_000, "$(id)", "a\nb", 7, ["dc2"]])
def test_a_hostile_pair_is_refused_without_being_echoed(tmp_path, hostile):
    path = write(tmp_path, fleet_data())
    for call in (lambda: load_inventory(path, pair=hostile),
                 lambda: load_inventory(path, configuration={"pair": hostile}),
                 lambda: load_fleet(path).pair(hostile),
                 lambda: parse_inventory(path.read_text(), path, pair=hostile)):
        with pytest.raises(InventoryError) as caught:
            call()
        message = str(caught.value)
        assert "not a plain name, not shown" in message and "onprem, dc2, dc3" in message
        assert len(message) < 400
        if isinstance(hostile, str):
            assert hostile not in message


# --- the cache and the pure parser ----------------------------------------------------------------------------


def test_fleets_are_cached_and_parse_fleet_is_pure(tmp_path):
    path = write(tmp_path, fleet_data())
    assert load_fleet(path) is load_fleet(path)
    parsed = parse_fleet(path.read_text(), path)
    assert list(parsed.pairs) == list(SPOKES) and parsed is not load_fleet(path)
    assert parse_fleet(LAB.read_text(), LAB).version == 1
    # the version 1 builder kept for existing callers refuses a version 2 document, pointing at load_fleet
    from drpoc_chaos.inventory.checks import build_inventory
    with pytest.raises(InventoryError, match="version 2 file") as caught:
        build_inventory(fleet_data(), path, {})
    assert "load_fleet" in caught.value.fix


# --- work pools -----------------------------------------------------------------------------------------------


def test_work_pool_is_the_fault_sites_else_the_other_sites(tmp_path):
    data = fleet_data()
    data["sites"]["dc2"]["work_pool"] = "drpoc-dc2"
    data["pairs"]["dc2"]["drill"] = {"fault_site": "dc2"}
    data["pairs"]["dc3"]["drill"] = {"fault_site": "dc3"}  # dc3 has no pool: the hub's
    fleet = load_fleet(write(tmp_path, data))
    assert fleet.pair("onprem").work_pool == "drpoc-aws"  # fault at the hub
    assert fleet.pair("dc2").work_pool == "drpoc-dc2"
    assert fleet.pair("dc3").work_pool == "drpoc-aws"
    assert fleet.sites["dc2"].work_pool == "drpoc-dc2" and fleet.sites["onprem"].work_pool is None
    del data["sites"]["aws"]["work_pool"]
    assert load_fleet(write(tmp_path, data, "nopool.yaml")).pair("dc3").work_pool is None


# --- validation -----------------------------------------------------------------------------------------------


def second_replica_of_dc2(d):
    d["pairs"]["dc3"]["source"] = "onprem"
    d["pairs"]["dc3"]["replica"] = "dc2"
    d["pairs"]["dc3"]["tunnel"] = {"onprem": side("dc2-onprem", "192.168.64.0/24", "192.168.65.0/24"),
                                   "dc2": side("dc2-onprem", "192.168.65.0/24", "192.168.64.0/24")}


def same_hub_connection(d):
    d["pairs"]["dc3"]["tunnel"]["aws"]["connection"] = "dc2-aws"


def same_hub_child(d):
    d["pairs"]["dc2"]["tunnel"]["aws"]["child"] = "hub-net"
    d["pairs"]["dc3"]["tunnel"]["aws"]["child"] = "hub-net"


def drill_takes_another_pairs_connection(d):
    d["pairs"]["dc3"]["drill"] = {"connection": "onprem-aws"}  # at the hub, where pair onprem's is called that


def transit_replica(d):
    d["hosts"]["transit-vpn"] = {"address": "10.0.0.9"}
    d["sites"]["transit"] = {"gateway": {"host": "transit-vpn"}}
    d["pairs"]["dc3"]["replica"] = "transit"


def bad_pair_name(name):
    def mutate(d):
        d["pairs"][name] = d["pairs"].pop("dc3")
    return mutate


def same_database(d):
    d["sites"]["dc3"]["database"]["mysql"]["port"] = 13306  # the hub's server


@pytest.mark.parametrize("mutate, key, words, at", [
    # pairs
    (bad_pair_name("dc3;id"), "pairs.dc3;id", "pair name 'dc3;id' is not a valid name", None),
    (bad_pair_name("--help"), "pairs.--help", "is not a valid name", None),
    (bad_pair_name("source"), "pairs.source", "pair name 'source' is a role word", None),
    (bad_pair_name("peer"), "pairs.peer", "is a role word", None),
    (lambda d: d["pairs"]["dc3"].update(replica="aws"), "pairs.dc3.replica", "same site as pairs.dc3.source",
     None),
    (lambda d: d["pairs"]["dc3"].update(source="gcp"), "pairs.dc3.source", "'gcp' is not a site", None),
    (lambda d: d["pairs"]["dc3"].pop("replica"), "pairs.dc3.replica", "missing", "dc3:"),
    (transit_replica, "pairs.dc3.replica", "site 'transit' has no database", None),
    (lambda d: d["pairs"]["dc3"].update(colour="red"), "pairs.dc3.colour", "unknown key", None),
    (lambda d: d["pairs"]["dc3"].pop("tunnel"), "pairs.dc3.tunnel", "missing", "dc3:"),
    (lambda d: d["pairs"]["dc3"]["tunnel"].pop("dc3"), "pairs.dc3.tunnel.dc3", "missing", "tunnel"),
    (lambda d: d["pairs"]["dc3"]["tunnel"].update(dc2=side("x", "10.0.0.0/8", "10.1.0.0/16")),
     "pairs.dc3.tunnel.dc2", "'dc2' is not one of the pair's sites (aws, dc3)", None),
    (lambda d: d["pairs"]["dc3"]["tunnel"]["aws"].update(host="aws-vpn"), "pairs.dc3.tunnel.aws.host",
     "unknown key", None),
    (lambda d: d["pairs"]["dc3"]["tunnel"]["aws"].update(local_subnet="10.20.0.1/16"),
     "pairs.dc3.tunnel.aws.local_subnet", "host bits set", None),
    (lambda d: d["pairs"]["dc3"]["tunnel"]["dc3"].update(connection="--help"), "pairs.dc3.tunnel.dc3.connection",
     "is not a valid name", None),
    (lambda d: d["pairs"]["dc3"]["tunnel"]["dc3"].update(child="a b"), "pairs.dc3.tunnel.dc3.child",
     "is not a valid name", None),
    (lambda d: d["pairs"]["dc3"].update(drill={"fault_site": "dc2"}), "pairs.dc3.drill.fault_site",
     "'dc2' is not a site of the pair", None),
    (lambda d: d["pairs"]["dc3"].update(drill={"fault_site": "dc3", "peer_site": "onprem"}),
     "pairs.dc3.drill.peer_site", "'onprem' is not a site of the pair", None),
    (lambda d: d["pairs"]["dc3"].update(drill={"fault_site": "dc3", "peer_site": "dc3"}),
     "pairs.dc3.drill.peer_site", "same site as pairs.dc3.drill.fault_site", None),
    (lambda d: d["pairs"]["dc3"].update(drill={"site": "dc3"}), "pairs.dc3.drill.site", "unknown key", None),
    (second_replica_of_dc2, "pairs.dc3.replica",
     "already the replica of pair 'dc2': pairs dc2 and dc3 would both stop its replication", None),
    (same_database, "pairs.dc3.replica", "sites aws and dc3 name the same database", None),
    (same_hub_connection, "pairs.dc3.tunnel.aws.connection",
     "pairs dc2 and dc3 both use connection 'dc2-aws' on gateway host 'aws-vpn'", None),
    (same_hub_child, "pairs.dc3.tunnel.aws.child",
     "pairs dc2 and dc3 both use child 'hub-net' on gateway host 'aws-vpn'", None),
    (drill_takes_another_pairs_connection, "pairs.dc3.drill.connection",
     "pairs onprem and dc3 both use connection 'onprem-aws' on gateway host 'aws-vpn'", None),
    (lambda d: d.update(pairs={}), "pairs", "no pairs", None),
    (lambda d: d.pop("pairs"), "pairs", "missing", "version"),
    (lambda d: d.update(drill={"fault_site": "aws"}), "drill", "no top-level `drill`", None),
    # sites
    (lambda d: d["sites"]["aws"].update(work_pool="pool;rm"), "sites.aws.work_pool", "work pool", None),
    (lambda d: d["sites"]["aws"].update(work_pool="-x"), "sites.aws.work_pool", "is not a valid name", None),
    (lambda d: d["sites"]["dc3"]["database"].update(role="replica"), "sites.dc3.database.role", "has no role",
     None),
    (lambda d: d["sites"]["dc3"]["gateway"].update(connection="dc3-aws"), "sites.dc3.gateway.connection",
     "belong to a pair", None),
    (lambda d: d["sites"]["dc3"].update(role="replica"), "sites.dc3.role", "no roles", None),
    (lambda d: d["sites"]["dc3"].update(colour="red"), "sites.dc3.colour", "unknown key", None),
    (lambda d: d["sites"].update(fault=d["sites"].pop("dc3")), "sites.fault", "is a role word", None),
    (lambda d: d["sites"]["dc3"]["gateway"].update(host="nowhere"), "sites.dc3.gateway.host",
     "'nowhere' is not a host", None),
    (lambda d: d["sites"]["dc3"]["gateway"].update(control="stroke"), "sites.dc3.gateway.control",
     "is not one of ipsec, swanctl, auto", None),
    (lambda d: d["sites"]["dc3"]["gateway"].update(helper="drpoc-gw"), "sites.dc3.gateway.helper",
     "not an absolute path", None),
    (lambda d: d["sites"]["dc3"].pop("gateway"), "sites.dc3.gateway", "missing", "dc3:"),
    (lambda d: d["sites"]["dc3"]["database"].update(host="db9"), "sites.dc3.database.host", "not a host", None),
    (lambda d: d["sites"]["dc3"]["database"]["mysql"].update(port=70000), "sites.dc3.database.mysql.port",
     "1–65535", None),
    (lambda d: d["sites"]["dc3"]["database"]["mysql"].update(password="hunter2"),
     "sites.dc3.database.mysql.password", "never a literal password", None),
    # shared with version 1
    (lambda d: d["hosts"]["dc3-vpn"].update(port=0), "hosts.dc3-vpn.port", "1–65535", None),
    (lambda d: d["mysql_defaults"].update(password={"vault": "x"}), "mysql_defaults.password",
     "exactly one of env, file, secret", None),
    (lambda d: d.update(extra=1), "extra", "unknown key", None),
    (lambda d: d["heartbeat"].update(format="other"), "heartbeat.format", "not a heartbeat format", None),
    (lambda d: d["replication"].update(user="repl;id"), "replication.user", "login name", None),
    (lambda d: d.update(version=3), "version", "unsupported version 3", None),
    (lambda d: d.update(version="2"), "version", "unsupported version '2'", None),
])
def test_each_rule_names_the_key_and_the_line(tmp_path, mutate, key, words, at):
    refused(tmp_path, mutate, key, words, at)


def test_versions_read_are_named(tmp_path):
    error = refused(tmp_path, lambda d: d.update(version=3), "version", "unsupported version 3")
    assert error.fix == "this drpoc-chaos reads versions 1 and 2"


def test_top_level_drill_says_to_move_it_under_the_pair(tmp_path):
    error = refused(tmp_path, lambda d: d.update(drill={"fault_site": "aws"}), "drill", "each pair has its own")
    assert "pairs.<pair>.drill" in error.fix


def test_missing_pairs_says_how_to_add_them(tmp_path):
    error = refused(tmp_path, lambda d: d.update(pairs={}), "pairs", "no pairs")
    assert "source" in error.fix and "replica" in error.fix and "tunnel" in error.fix


def test_a_version_1_layout_under_version_2_says_so(tmp_path):
    data = yaml.safe_load(LAB.read_text())
    data["version"] = 2
    with pytest.raises(InventoryError) as caught:
        load_fleet(write(tmp_path, data))
    assert caught.value.key == "version" and "written as version 1" in str(caught.value)
    assert "write `version: 1`" in caught.value.fix


def test_duplicate_pairs_are_refused_with_the_line(tmp_path):
    text = yaml.safe_dump(fleet_data(), sort_keys=False)
    dc3 = text[text.index("  dc3:\n    source:"):]
    path = write(tmp_path, text + dc3)
    with pytest.raises(InventoryError, match="duplicate key 'dc3'") as caught:
        load_fleet(path)
    assert caught.value.line == text.count("\n") + 1


def test_an_alias_bomb_is_refused_in_version_2_too(tmp_path):
    bomb = "version: 2\n" + "\n".join(
        [f"a: &a {{{', '.join(f'{k}: x' for k in 'abcdefghi')}}}"]
        + [f"{n}: &{n} {{{', '.join(f'{k}: *{p}' for k in 'abcdefghi')}}}"
           for p, n in zip("abcdefgh", "bcdefghi", strict=True)]) + "\n"
    with pytest.raises(InventoryError, match="alias"):
        load_fleet(write(tmp_path, bomb))


def test_secret_values_never_reach_a_pair_view(tmp_path, monkeypatch):
    secret = "s3cr3t-Pa55-do-not-print"
    monkeypatch.setenv("DRPOC_TEST_MYSQL_PASSWORD", secret)
    fleet = load_fleet(write(tmp_path, fleet_data()))
    for view in fleet.pairs.values():
        assert inv.resolve_secret(view.source.password_ref) == secret
        for text in (repr(view), repr(fleet), json.dumps(view.scope())):
            assert secret not in text


# --- the documented example -----------------------------------------------------------------------------------


def test_the_documented_fleet_example_loads():
    section = DOC.read_text().split("## Version 2: fleets", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    fleet = parse_fleet(block, HERE / "documented-fleet.yaml")
    assert fleet.version == 2 and list(fleet.pairs) == ["onprem", "onprem2"]
    assert fleet.pair("onprem").drill == inv.DrillTarget("onprem-aws", "onprem", "aws")
    assert fleet.pair("onprem").work_pool == "drpoc-onprem" and fleet.pair("onprem2").work_pool == "drpoc-aws"
    assert fleet.pair("onprem2").gateway("aws").child == "onprem2-aws-net"
    assert fleet.fault_gateway("onprem2") == "aws-vpn"
    with pytest.raises(InventoryError, match=re.escape("this inventory holds 2 pairs (onprem, onprem2): choose one")):
        parse_inventory(block, HERE / "documented-fleet.yaml")
    for view in fleet.pairs.values():
        assert view.source.role == "source" and view.replica.role == "replica"
        assert view.gateway(view.source.site).remote_subnet == view.gateway(view.replica.site).local_subnet
