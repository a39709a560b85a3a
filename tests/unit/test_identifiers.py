"""Strict identifiers and roles: names that reach a gateway's command line or a SQL statement are refused with a
clear error naming the key when the inventory (or an experiment's argument) is loaded — before anything is touched;
and experiments say roles (fault, peer, source, replica), so any site names work."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from chaoslib.exceptions import ActivityFailed

from drpoc_chaos import inventory as inv
from drpoc_chaos.core.identifiers import (
    IdentifierError,
    address_problem,
    login_problem,
    name_problem,
    quote_table,
    split_table,
)
from drpoc_chaos.inventory import InventoryError, load_inventory
from drpoc_chaos.replication import probes as replication_probes
from drpoc_chaos.vpn import actions as vpn_actions
from drpoc_chaos.vpn import probes as vpn_probes

LAB = Path(__file__).parent / "inventories" / "lab.yaml"
INJECTIONS = ["onprem-aws; rm -rf /", "--help", "-oProxyCommand=id", "$(id)", "`id`", "a b", "a\nb", "a'b", "",
              "x" * 65, "ну", "a/b", "a|b", "a&b", "a>b"]


pytestmark = pytest.mark.usefixtures("clean_inventory_cache")


def load_variant(tmp_path: Path, mutate) -> inv.Inventory:
    data = yaml.safe_load(LAB.read_text())
    mutate(data)
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return load_inventory(path)


def refused(tmp_path: Path, mutate, key: str) -> InventoryError:
    with pytest.raises(InventoryError) as caught:
        load_variant(tmp_path, mutate)
    error = caught.value
    assert error.key == key, error
    assert error.fix and str(tmp_path) in str(error)
    return error


# --- the rules ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("good", ["onprem-aws", "peer-11:1::2-tunnel-2", "dc1.vpn_01", "A", "x" * 64])
def test_plain_names_pass(good):
    assert name_problem(good) is None


@pytest.mark.parametrize("bad", INJECTIONS)
def test_names_that_could_be_options_or_shell_text_are_refused(bad):
    assert name_problem(bad) is not None


@pytest.mark.parametrize("good", ["203.0.113.10", "2001:db8::1", "gw.example.com", "localhost", "aws-vpn"])
def test_addresses(good):
    assert address_problem(good) is None


@pytest.mark.parametrize("bad", ["-oProxyCommand=id", "a b", "host;id", "", "a..b", "-x.example.com", "h_st"])
def test_addresses_that_could_be_options_are_refused(bad):
    assert address_problem(bad) is not None


def test_login_names():
    assert login_problem("drpoc") is None and login_problem("svc.drill-1") is None
    for bad in ["-l", "root;id", "a b", "", "x" * 33, "1abc"]:
        assert login_problem(bad) is not None, bad


def test_tables_are_checked_and_quoted():
    assert split_table("testdb.ping") == ("testdb", "ping")
    assert quote_table("percona.heartbeat") == "`percona`.`heartbeat`"
    assert quote_table("db$1.t_2") == "`db$1`.`t_2`"
    for bad in ["ping", "testdb.ping; DROP TABLE x", "testdb.`ping`", "a.b.c", "testdb.ping--", "123.456",
                "testdb.pi ng", "", ".ping", "testdb.", None, 42, "t" * 65 + ".x"]:
        with pytest.raises(IdentifierError):
            quote_table(bad)


# --- the inventory refuses them, naming the key --------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["onprem-aws; rm -rf /", "--help", "$(reboot)", "a b"])
def test_inventory_refuses_hostile_connection_names(tmp_path, bad):
    error = refused(tmp_path, lambda d: d["sites"]["aws"]["gateway"].update(connection=bad),
                    "sites.aws.gateway.connection")
    assert "not a valid name" in str(error)


def test_inventory_refuses_a_hostile_child_drill_connection_helper_and_control(tmp_path):
    refused(tmp_path, lambda d: d["sites"]["onprem"]["gateway"].update(child="-x"), "sites.onprem.gateway.child")
    refused(tmp_path, lambda d: d["drill"].update(connection="--help"), "drill.connection")
    refused(tmp_path, lambda d: d["sites"]["aws"]["gateway"].update(helper="drpoc-gw"), "sites.aws.gateway.helper")
    refused(tmp_path, lambda d: d["sites"]["aws"]["gateway"].update(helper="/usr/bin/drpoc gw"),
            "sites.aws.gateway.helper")
    error = refused(tmp_path, lambda d: d["sites"]["aws"]["gateway"].update(control="vici"),
                    "sites.aws.gateway.control")
    assert "ipsec, swanctl, auto" in str(error)


def test_inventory_refuses_hostile_hosts_addresses_users_and_schemas(tmp_path):
    def rename_host(d):
        d["hosts"]["aws vpn; id"] = d["hosts"].pop("aws-vpn")
    refused(tmp_path, rename_host, "hosts.aws vpn; id")
    refused(tmp_path, lambda d: d["hosts"]["aws-vpn"].update(address="-oProxyCommand=id"), "hosts.aws-vpn.address")
    refused(tmp_path, lambda d: d["ssh_defaults"].update(user="root;id"), "ssh_defaults.user")
    refused(tmp_path, lambda d: d["mysql_defaults"].update(database="testdb; DROP DATABASE x"),
            "mysql_defaults.database")
    refused(tmp_path, lambda d: d["sites"]["aws"]["database"]["mysql"].update(address="$(id)"),
            "sites.aws.database.mysql.address")


@pytest.mark.parametrize("word", ["fault", "peer", "source", "replica"])
def test_a_site_may_not_be_called_like_a_role(tmp_path, word):
    def rename(d):
        d["sites"][word] = d["sites"].pop("onprem")
        d["drill"]["peer_site"] = word
    error = refused(tmp_path, rename, f"sites.{word}")
    assert "role word" in str(error)


def test_control_child_and_helper_are_read(tmp_path):
    i = load_variant(tmp_path, lambda d: d["sites"]["aws"]["gateway"].update(
        control="swanctl", child="onprem-aws-net", helper="/opt/drpoc/bin/drpoc-gw"))
    gw = i.gateway("aws")
    assert (gw.control, gw.connection, gw.child, gw.helper) == ("swanctl", "onprem-aws", "onprem-aws-net",
                                                              "/opt/drpoc/bin/drpoc-gw")
    other = i.gateway("onprem")
    assert (other.control, other.child, other.helper) == ("auto", other.connection, "/usr/local/sbin/drpoc-gw")


# --- roles ----------------------------------------------------------------------------------------------------------

def renamed(d):
    """The lab's estate with the sites called cloud and dc1 (as a hand-written inventory may)."""
    d["sites"]["cloud"] = d["sites"].pop("aws")
    d["sites"]["dc1"] = d["sites"].pop("onprem")
    d["drill"].update(fault_site="cloud", peer_site="dc1")


def test_role_words_resolve_to_whatever_the_sites_are_called(tmp_path):
    i = load_variant(tmp_path, renamed)
    assert [i.resolve_site(w) for w in ("fault", "peer", "source", "replica")] == ["cloud", "dc1", "cloud", "dc1"]
    assert i.resolve_site("dc1") == "dc1" and i.resolve_site(None) == "cloud" and i.resolve_site(None, "peer") == "dc1"
    with pytest.raises(InventoryError) as caught:
        i.resolve_site("aws")
    assert "no site 'aws'" in str(caught.value) and "fault, peer, source, replica" in str(caught.value)
    assert "cloud, dc1" in str(caught.value)


def test_role_words_follow_the_drill_not_the_database_roles(tmp_path):
    """A drill may cut the tunnel from the replica's side: fault/peer follow `drill`, source/replica the databases."""
    def fault_on_prem(d):
        d["drill"].update(fault_site="onprem", peer_site="aws")
    i = load_variant(tmp_path, fault_on_prem)
    assert (i.resolve_site("fault"), i.resolve_site("peer")) == ("onprem", "aws")
    assert (i.resolve_site("source"), i.resolve_site("replica")) == ("aws", "onprem")


def test_shipped_experiments_name_no_site():
    experiments = Path(__file__).resolve().parents[2] / "experiments"
    for path in sorted(experiments.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        for activity in data.get("method", []) + data.get("rollbacks", []) + \
                data.get("steady-state-hypothesis", {}).get("probes", []):
            args = (activity.get("provider") or {}).get("arguments") or {}
            for key in ("site", "from_site", "to_site"):
                if key in args:
                    assert args[key] in ("fault", "peer", "source", "replica"), (path.name, activity["name"])


# --- activities refuse hostile arguments before anything is touched ------------------------------------------------

CFG = {"inventory": str(LAB)}


@pytest.mark.parametrize("call", [
    lambda bad: vpn_actions.tunnel_down(site="fault", connection=bad, configuration=CFG),
    lambda bad: vpn_actions.tunnel_up(site="fault", connection=bad, configuration=CFG),
    lambda bad: vpn_actions.recover_tunnel(connection=bad, configuration=CFG),
    lambda bad: vpn_probes.tunnel_status("fault", connection=bad, configuration=CFG),
    lambda bad: vpn_probes.tunnel_established("peer", connection=bad, configuration=CFG),
])
@pytest.mark.parametrize("bad", ["--help", "onprem-aws; rm -rf /", "$(id)"])
def test_vpn_activities_refuse_hostile_connection_arguments(monkeypatch, call, bad):
    def no_ssh(*_a, **_k):
        raise AssertionError("nothing may run on a gateway for a refused argument")
    monkeypatch.setattr("drpoc_chaos.services.gateway_helper.run", no_ssh)
    with pytest.raises(ActivityFailed) as caught:
        call(bad)
    assert "connection" in str(caught.value) and "not a valid name" in str(caught.value)


def test_vpn_activities_refuse_unknown_sites_with_the_roles_listed(monkeypatch):
    monkeypatch.setattr("drpoc_chaos.services.gateway_helper.run", lambda *a, **k: (_ for _ in ()).throw(
        AssertionError("no SSH for a refused site")))
    with pytest.raises(ActivityFailed) as caught:
        vpn_actions.tunnel_down(site="gcp", configuration=CFG)
    assert "no site 'gcp'" in str(caught.value) and "fault, peer, source, replica" in str(caught.value)


@pytest.mark.parametrize("bad", ["testdb.ping; DROP TABLE testdb.ping", "ping", "testdb.ping`", "a.b.c"])
def test_ping_probes_refuse_hostile_tables(monkeypatch, bad):
    monkeypatch.setattr("drpoc_chaos.db.execute", lambda *a, **k: (_ for _ in ()).throw(
        AssertionError("no SQL for a refused table")))
    for probe in (replication_probes.ping_rows_compare, replication_probes.ping_rows_match):
        with pytest.raises(ActivityFailed) as caught:
            probe(table=bad, configuration=CFG)
        assert "schema.table" in str(caught.value) or "not a valid schema/table name" in str(caught.value)
