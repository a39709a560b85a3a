"""The fleet lab as data (`drpoc lab up --sites N`): names, addresses, ports and configs of the hub and its spokes,
and the version 2 inventory it writes — pure, no lab needed."""
from __future__ import annotations

import ipaddress

import pytest
import yaml

from drpoc_chaos.inventory import parse_fleet
from drpoc_chaos.lab import configs
from drpoc_chaos.lab.inventory_file import fleet_inventory
from drpoc_chaos.lab.topology import (
    GATEWAYS,
    HOSTS,
    LINKS,
    MAX_SITES,
    Paths,
    build_topology,
    lab_host_name,
    spoke_child,
)


def test_one_site_is_the_seeds_lab():
    t = build_topology(1)
    assert t.hosts == HOSTS and set(t.links) == set(LINKS) and t.gateways == GATEWAYS
    assert t.host_names == ("wan", "aws-vpn", "aws-db", "onprem-vpn", "onprem-db")


@pytest.mark.parametrize("n", [2, 3, 8, MAX_SITES])
def test_spokes_get_their_own_names_subnets_ports_and_wan(n):
    t = build_topology(n)
    assert t.spoke_sites == ("onprem",) + tuple(f"onprem{k}" for k in range(2, n + 1))
    assert len(t.hosts) == 3 + 2 * n
    ports = [p for p, _, _ in t.published_ports()]
    assert len(ports) == len(set(ports))                                  # no two services on one port
    addrs = [link.a_addr.split("/")[0] for link in t.links] + [link.b_addr.split("/")[0] for link in t.links]
    assert len(addrs) == len(set(addrs))                                  # no address twice
    for link in t.links:
        a, b = (ipaddress.ip_interface(x) for x in (link.a_addr, link.b_addr))
        assert a.network == b.network                                     # each veth pair shares a subnet
        # private, the seed's two WAN documentation ranges, or the spokes' benchmarking range: never a real address
        assert a.ip.is_private or any(a.ip in ipaddress.ip_network(n) for n in (
            "198.51.100.0/24", "203.0.113.0/24", "198.18.0.0/24"))
        assert a.ip not in ipaddress.ip_network("192.0.2.0/24")           # what CI machines give their own NIC
    hub = t.gateways["aws"]
    assert [x["connection"] for x in hub["tunnels"]] == ["onprem-aws"] + [f"onprem{k}-aws" for k in range(2, n + 1)]
    assert t.databases[f"onprem{n}"] == {"host": f"onprem{n}-db", "role": "replica", "server_id": n + 1,
                                         "ip": f"192.168.{63 + n}.15"}
    # without its tunnel, a spoke's LAN is a blackhole on the hub (never routed out to the WAN)
    aws = t.hosts_by_name["aws-vpn"]
    assert all(f"blackhole 192.168.{63 + k}.0/24" in aws.routes for k in range(1, n + 1))


def test_out_of_range_sizes_are_refused():
    for n in (0, MAX_SITES + 1):
        with pytest.raises(ValueError, match="--sites"):
            build_topology(n)


def test_lab_host_names_are_only_the_labs():
    assert all(lab_host_name(h) for h in build_topology(MAX_SITES).host_names)
    assert not any(lab_host_name(h) for h in ("eth0", "onprem99-vpn", "aws", "onprem-vpn2", "docker0", ""))


def test_the_hub_configs_carry_one_connection_per_spoke():
    t = build_topology(3)
    hub = t.gateways["aws"]
    conf = configs.ipsec_conf("aws", hub)
    assert conf.count("\nconn ") == 3 and "rightsubnet=192.168.66.0/24" in conf and "auto=add" in conf
    assert configs.ipsec_secrets("aws", "k", hub).count("PSK") == 3
    sw = configs.swanctl_conf("aws", "k", spoke_child(1, "swanctl"), hub)
    assert "onprem-aws-net {" in sw and "onprem3-aws-net {" in sw and sw.count("id-remote") == 3
    spoke = configs.swanctl_conf("onprem3", "k", spoke_child(1, "swanctl"), t.gateways["onprem3"])
    assert "onprem3-aws-net {" in spoke and "start_action = start" in spoke     # the spoke's child, named as the hub's


@pytest.mark.parametrize("mode", ["ipsec", "swanctl"])
def test_the_fleet_inventory_loads_as_one_pair_per_spoke(tmp_path, mode):
    paths = Paths(state=tmp_path, run=tmp_path / "run")
    (tmp_path / "secrets").mkdir()
    for f in ("mysql_password", "repl_password"):
        (tmp_path / "secrets" / f).write_text("x")
    doc = fleet_inventory(paths, mode, build_topology(3))
    fleet = parse_fleet(yaml.safe_dump(doc), tmp_path / "inventory.yaml")
    assert fleet.version == 2 and list(fleet.pairs) == ["onprem", "onprem2", "onprem3"]
    p3 = fleet.pairs["onprem3"]
    assert (p3.source.port, p3.replica.port) == (13306, 13309) and p3.drill.fault_site == "onprem3"
    assert p3.gateway("aws").connection == "onprem3-aws" and p3.gateway("aws").remote_subnet == "192.168.66.0/24"
    assert p3.gateway("onprem3").child == ("onprem3-aws-net" if mode == "swanctl" else "onprem3-aws")
    assert fleet.fault_gateway("onprem2") == "onprem2-vpn"      # each pair's drill lock is its spoke's
