"""Unit tests for drpoc_chaos.vpn.status on recorded strongSwan outputs: the folders
tests/fixtures/strongswan-5.9.8-lab/, tests/fixtures/strongswan-5.2-5.3-danos/,
tests/fixtures/strongswan-5.7.2-chromiumos/, tests/fixtures/strongswan-swanctl-public/ and
tests/fixtures/strongswan-charon-log-public/, each with a provenance note saying where its files came from."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from drpoc_chaos.vpn.status import (
    VpnStatusParseError,
    normalize_selectors,
    parse_ipsec_statusall,
    parse_ipsec_up_output,
    parse_swanctl_list_conns,
    parse_swanctl_list_sas,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
LAB = "strongswan-5.9.8-lab"
DANOS = "strongswan-5.2-5.3-danos"
SWANCTL = "strongswan-swanctl-public"

STATUSALL_FIXTURES = sorted(p.relative_to(FIXTURES).as_posix() for p in FIXTURES.glob("strongswan-*/*statusall*.txt"))
SWANCTL_FIXTURES = sorted(p.relative_to(FIXTURES).as_posix() for p in FIXTURES.glob("strongswan-*/*swanctl*.txt"))
UP_DOWN_FIXTURES = sorted(
    p.relative_to(FIXTURES).as_posix()
    for pattern in ("strongswan-*/*ipsec-up*.txt", "strongswan-*/*ipsec-down*.txt",
                    "strongswan-charon-log-public/*.txt")
    for p in FIXTURES.glob(pattern)
)


def read(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def statusall(name: str):
    return parse_ipsec_statusall(read(name))


def test_fixture_sets_are_not_empty():
    assert len(STATUSALL_FIXTURES) == 19
    assert len(SWANCTL_FIXTURES) == 9
    assert len(UP_DOWN_FIXTURES) == 6


@pytest.mark.parametrize("name", STATUSALL_FIXTURES)
def test_every_statusall_fixture_parses_and_round_trips(name):
    status = statusall(name)
    assert status.source == "statusall"
    assert status.up_count is not None and status.connecting_count is not None
    assert status.ignored_lines == []
    data = status.to_dict()
    assert json.loads(json.dumps(data)) == data


@pytest.mark.parametrize("name", SWANCTL_FIXTURES)
def test_every_swanctl_fixture_parses_and_round_trips(name):
    status = parse_swanctl_list_sas(read(name))
    assert status.source == "swanctl"
    data = status.to_dict()
    assert json.loads(json.dumps(data)) == data


@pytest.mark.parametrize("name", UP_DOWN_FIXTURES)
def test_every_up_down_fixture_gives_a_json_summary(name):
    result = parse_ipsec_up_output(read(name))
    assert json.loads(json.dumps(result)) == result


# --- lab, strongSwan 5.9.8, kernel-libipsec ------------------------------------------------------

def test_lab_aws_up_statusall():
    status = statusall(f"{LAB}/strongswan-5.9.8-statusall-aws-up.txt")
    assert status.daemon_version == "5.9.8"
    assert status.uptime == "1 second"
    assert (status.up_count, status.connecting_count) == (1, 0)
    assert status.listening_addresses == ["198.51.100.1", "10.20.11.10"]

    [conn] = status.connections
    assert (conn.name, conn.local_address, conn.remote_address, conn.version) == (
        "onprem-aws", "198.51.100.1", "203.0.113.1", 2)
    assert conn.local_ts == ["10.20.0.0/16"] and conn.remote_ts == ["192.168.64.0/24"]
    assert conn.mode == "TUNNEL"
    assert (conn.dpd_delay_seconds, conn.dpd_action) == (10, "start")
    assert (conn.local_id, conn.local_auth) == ("198.51.100.1", "pre-shared key authentication")
    assert conn.remote_id == "203.0.113.1"

    [ike] = status.ike_sas
    assert (ike.name, ike.unique_id, ike.state, ike.version) == ("onprem-aws", 1, "ESTABLISHED", 2)
    assert ike.established_seconds_ago == 1
    assert (ike.local_address, ike.local_id, ike.remote_address, ike.remote_id) == (
        "198.51.100.1", "198.51.100.1", "203.0.113.1", "203.0.113.1")
    assert (ike.spi_i, ike.spi_r) == ("a943b11f2f32b5cd", "85e5cac4b4672543")
    assert ike.initiator is False  # the '*' is on the responder SPI: on-prem initiated
    assert ike.proposal == "AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048"
    assert ike.rekey == "pre-shared key reauthentication in 7 hours"

    [child] = ike.children
    assert (child.name, child.unique_id, child.state, child.mode) == ("onprem-aws", 1, "INSTALLED", "TUNNEL")
    assert (child.protocol, child.encapsulation, child.reqid) == ("ESP", "udp", 1)
    assert (child.spi_in, child.spi_out) == ("faf1fc25", "724ab19e")
    assert (child.bytes_in, child.packets_in, child.bytes_out, child.packets_out) == (1515, 17, 2632, 16)
    assert (child.last_in_seconds_ago, child.last_out_seconds_ago) == (1, 1)
    assert child.proposal == "AES_CBC_256/HMAC_SHA2_256_128"
    assert child.rekey == "in 42 minutes"
    assert child.local_ts == ["10.20.0.0/16"] and child.remote_ts == ["192.168.64.0/24"]

    assert status.tunnel_state("onprem-aws") == "up"
    assert status.tunnel_state("onprem-aws", "10.20.0.0/16", "192.168.64.0/24") == "up"
    # Wrong selectors (the on-prem view) are not this tunnel: IKE up, no matching CHILD_SA.
    assert status.tunnel_state("onprem-aws", "192.168.64.0/24", "10.20.0.0/16") == "connecting"
    assert status.tunnel_state("other-conn") == "down"


@pytest.mark.parametrize("side", ["aws", "onprem"])
def test_lab_down_statusall_has_no_sa_but_keeps_the_connection(side):
    status = statusall(f"{LAB}/strongswan-5.9.8-statusall-{side}-down.txt")
    assert (status.up_count, status.connecting_count) == (0, 0)
    assert status.ike_sas == []
    assert [c.name for c in status.connections] == ["onprem-aws"]
    assert status.tunnel_state("onprem-aws") == "down"


def test_lab_both_gateways_see_the_same_tunnel():
    aws = statusall(f"{LAB}/strongswan-5.9.8-statusall-aws-up.txt").ike_sas[0]
    onprem = statusall(f"{LAB}/strongswan-5.9.8-statusall-onprem-up.txt").ike_sas[0]
    assert (aws.spi_i, aws.spi_r) == (onprem.spi_i, onprem.spi_r)
    assert onprem.initiator is True and aws.initiator is False
    a, o = aws.children[0], onprem.children[0]
    assert (a.spi_in, a.spi_out) == (o.spi_out, o.spi_in)
    assert (a.bytes_in, a.packets_in) == (o.bytes_out, o.packets_out) == (1515, 17)
    assert o.local_ts == ["192.168.64.0/24"] and o.remote_ts == ["10.20.0.0/16"]


def test_lab_recovered_is_a_new_sa():
    aws = statusall(f"{LAB}/strongswan-5.9.8-statusall-aws-recovered.txt")
    onprem = statusall(f"{LAB}/strongswan-5.9.8-statusall-onprem-recovered.txt")
    assert aws.uptime == "27 seconds"
    [ike] = aws.ike_sas
    assert (ike.unique_id, ike.spi_i) == (2, "564ced942c4a0532")
    assert (ike.children[0].unique_id, ike.children[0].spi_in, ike.children[0].bytes_in) == (2, "97f0302f", 1609)
    assert onprem.ike_sas[0].children[0].rekey == "in 47 minutes"
    assert aws.tunnel_state("onprem-aws", ["10.20.0.0/16"], ["192.168.64.0/24"]) == "up"
    assert onprem.tunnel_state("onprem-aws", ["192.168.64.0/24"], ["10.20.0.0/16"]) == "up"


def test_lab_swanctl_up_matches_statusall():
    status = parse_swanctl_list_sas(read(f"{LAB}/strongswan-5.9.8-swanctl-list-sas-aws-up.txt"))
    assert status.daemon_version is None and status.connections == []
    [ike] = status.ike_sas
    assert (ike.name, ike.unique_id, ike.state, ike.version) == ("onprem-aws", 1, "ESTABLISHED", 2)
    assert (ike.spi_i, ike.spi_r, ike.initiator) == ("a943b11f2f32b5cd", "85e5cac4b4672543", False)
    assert (ike.local_id, ike.local_address, ike.local_port) == ("198.51.100.1", "198.51.100.1", 4500)
    assert (ike.remote_id, ike.remote_address, ike.remote_port) == ("203.0.113.1", "203.0.113.1", 4500)
    assert ike.proposal == "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048"
    assert ike.established_seconds_ago == 1
    assert ike.rekey == "reauth in 28138s"
    [child] = ike.children
    assert (child.name, child.unique_id, child.reqid, child.state, child.mode) == (
        "onprem-aws", 1, 1, "INSTALLED", "TUNNEL")
    assert (child.encapsulation, child.protocol, child.proposal) == ("udp", "ESP", "AES_CBC-256/HMAC_SHA2_256_128")
    assert (child.installed_seconds_ago, child.rekey, child.expires) == (1, "in 2544s", "in 3599s")
    assert (child.spi_in, child.bytes_in, child.packets_in, child.last_in_seconds_ago) == ("faf1fc25", 1515, 17, 1)
    assert (child.spi_out, child.bytes_out, child.packets_out) == ("724ab19e", 2632, 16)
    assert child.local_ts == ["10.20.0.0/16"] and child.remote_ts == ["192.168.64.0/24"]
    assert status.tunnel_state("onprem-aws", "10.20.0.0/16", "192.168.64.0/24") == "up"

    legacy = statusall(f"{LAB}/strongswan-5.9.8-statusall-aws-up.txt")
    assert legacy.ike_sas[0].children[0].spi_in == child.spi_in


def test_lab_swanctl_down_is_empty_and_valid():
    status = parse_swanctl_list_sas(read(f"{LAB}/strongswan-5.9.8-swanctl-list-sas-aws-down.txt"))
    assert status.ike_sas == []
    assert status.tunnel_state("onprem-aws") == "down"


# --- DANOS / Vyatta, strongSwan 5.2.1 and 5.3.5 --------------------------------------------------

def test_ikev1_none():
    status = statusall(f"{DANOS}/strongswan-5.2.1-statusall-ikev1-none.txt")
    assert status.daemon_version == "5.2.1"
    assert status.uptime == "8 minutes"
    assert status.ike_sas == []
    [conn] = status.connections
    assert (conn.version, conn.dpd_delay_seconds, conn.dpd_action) == (1, None, None)
    assert status.tunnel_state("peer-192.168.100.6-tunnel-1") == "down"


def test_ikev1_connecting_with_tasks():
    status = statusall(f"{DANOS}/strongswan-5.2.1-statusall-ikev1-connecting.txt")
    [ike] = status.ike_sas
    assert (ike.state, ike.version, ike.established_seconds_ago) == ("CONNECTING", 1, None)
    assert (ike.local_id, ike.remote_id) == ("%any", "%any")
    assert (ike.spi_i, ike.spi_r, ike.initiator) == ("cbbafc95affa94fc", "0000000000000000", True)
    assert ike.tasks_queued == ["QUICK_MODE"]
    assert ike.tasks_active == ["ISAKMP_VENDOR", "ISAKMP_CERT_PRE", "MAIN_MODE", "ISAKMP_CERT_POST", "ISAKMP_NATD"]
    assert ike.children == []
    assert status.tunnel_state("peer-192.168.100.6-tunnel-1") == "connecting"


def test_ikev1_established_without_child_is_connecting():
    status = statusall(f"{DANOS}/strongswan-5.2.1-statusall-ikev1-established-no-child.txt")
    [ike] = status.ike_sas
    assert (ike.state, ike.established_seconds_ago) == ("ESTABLISHED", 7)
    assert ike.rekey == "pre-shared key reauthentication in 44 minutes"
    assert (ike.tasks_queued, ike.tasks_active) == (["QUICK_MODE"], ["MODE_CONFIG"])
    assert status.tunnel_state("peer-192.168.100.129-tunnel-1") == "connecting"


def test_ikev1_child_rekeying_next_to_installed():
    status = statusall(f"{DANOS}/strongswan-5.2.1-statusall-ikev1-child-rekeying.txt")
    [ike] = status.ike_sas
    assert ike.established_seconds_ago == 105 * 60  # "105 minutes ago": a lower bound
    rekeying, installed = ike.children
    assert (rekeying.unique_id, rekeying.state, rekeying.expires, rekeying.spi_in) == (
        21, "REKEYING", "in 114 seconds", None)
    assert rekeying.local_ts == ["192.168.248.0/24"]  # trailing space after the selector ignored
    assert (installed.unique_id, installed.state, installed.reqid) == (21, "INSTALLED", None)
    assert (installed.encapsulation, installed.spi_in, installed.spi_out) == ("esp", "cc436578", "c74a030d")
    assert (installed.bytes_in, installed.packets_in, installed.bytes_out, installed.packets_out) == (336, 4, 336, 4)
    assert status.tunnel_state("peer-192.168.100.6-tunnel-1", "192.168.248.0/24", "192.168.40.0/24") == "up"


def test_ikev1_rekeyed_twice():
    status = statusall(f"{DANOS}/strongswan-5.2.1-statusall-ikev1-rekeyed-twice.txt")
    [ike] = status.ike_sas
    assert [c.state for c in ike.children] == ["REKEYED", "REKEYED", "INSTALLED"]
    assert [c.expires for c in ike.children] == ["in 27 seconds", "in 39 seconds", None]
    live = ike.children[2]
    assert (live.bytes_in, live.packets_in, live.bytes_out, live.packets_out) == (12445020, 8715, 12446448, 8716)
    assert live.rekey == "in 1 second"
    assert status.tunnel_state("peer-192.168.248.248-tunnel-vti", "0.0.0.0/0", "0.0.0.0/0") == "up"


def test_ikev1_esp_in_udp_behind_nat():
    status = statusall(f"{DANOS}/strongswan-5.2.1-statusall-ikev1-esp-in-udp-nat.txt")
    [conn] = status.connections
    assert (conn.remote_address, conn.remote_id, conn.remote_auth) == ("%any", None, "pre-shared key authentication")
    [ike] = status.ike_sas
    assert (ike.local_address, ike.local_port, ike.local_id) == ("190.160.2.1", 500, "190.160.2.1")
    assert (ike.remote_address, ike.remote_port, ike.remote_id) == ("190.160.5.2", 500, "190.160.3.2")
    assert ike.initiator is False and ike.rekey == "rekeying disabled"
    [child] = ike.children
    assert (child.encapsulation, child.spi_in, child.spi_out) == ("udp", "c965452c", "c74a030d")
    assert (child.bytes_in, child.packets_in, child.rekey) == (0, 0, "disabled")


def test_two_child_configs_in_one_connection():
    status = statusall(f"{DANOS}/strongswan-5.2.1-statusall-two-child-configs.txt")
    [conn] = status.connections
    assert [(c.name, c.local_ts, c.remote_ts) for c in conn.children] == [
        ("peer-190.160.3.2-tunnel-1", ["190.160.1.0/24"], ["190.160.4.0/24"]),
        ("peer-190.160.3.2-tunnel-2", ["190.160.10.0/24"], ["190.160.40.0/24"]),
    ]
    [ike] = status.ike_sas
    assert [(c.name[-8:], c.unique_id, c.state) for c in ike.children] == [
        ("tunnel-1", 1, "REKEYED"), ("tunnel-2", 2, "INSTALLED"),
        ("tunnel-1", 1, "REKEYED"), ("tunnel-1", 1, "INSTALLED")]
    # The second child config is found through its CHILD_SA name.
    assert status.sas_for("peer-190.160.3.2-tunnel-2") == [ike]
    assert status.tunnel_state("peer-190.160.3.2-tunnel-2", "190.160.10.0/24", "190.160.40.0/24") == "up"
    assert status.tunnel_state("peer-190.160.3.2-tunnel-2", "190.160.1.0/24", "190.160.4.0/24") == "connecting"


def test_x509_ipv6_and_a_connecting_sa():
    status = statusall(f"{DANOS}/strongswan-5.2.1-statusall-x509-ipv6-connecting.txt")
    dn = "C=KG, ST=NA, O=OpenVPN-TEST, CN=Test-Server, E=me@myhost.mydomain"
    assert status.connections[0].local_id == dn
    assert status.connections[0].local_auth == "public key authentication"
    assert status.listening_addresses[1] == "11::1"
    v6, v4 = status.ike_sas
    assert (v6.name, v6.state, v6.local_address, v6.local_id) == ("peer-11:1::2-tunnel-2", "ESTABLISHED", "11:1::1", dn)
    assert v6.established_seconds_ago == 19 * 60
    assert v6.children[0].local_ts == ["192:168::1:1/128"]
    assert (v4.state, v4.remote_id, v4.spi_r) == ("CONNECTING", "%any", "0694a583fc98a198")
    assert status.tunnel_state("peer-11:1::2-tunnel-2", "192:168:0::1:1/128", "192:168::1:2") == "up"
    assert status.tunnel_state("peer-11.1.0.2-tunnel-1") == "connecting"


def test_ikev2_routed_connection_and_three_sas():
    status = statusall(f"{DANOS}/strongswan-5.3.5-statusall-ikev2-routed-three-sas.txt")
    [routed] = status.routed
    assert (routed.unique_id, routed.state, routed.reqid, routed.local_ts) == (6, "ROUTED", 3, ["0.0.0.0/0"])
    assert status.connections[0].dpd_delay_seconds == 30 and status.connections[0].dpd_action == "restart"
    assert [(s.unique_id, s.version, s.established_seconds_ago) for s in status.ike_sas] == [
        (13, 2, 58), (12, 2, 109), (11, 2, 180)]
    assert status.ike_sas[2].tasks_active == ["IKE_DPD"]
    assert [s.children[0].spi_out for s in status.ike_sas] == ["0001dd51", "0001377b", "0001def5"]
    assert status.ike_sas[0].children[0].proposal == "AES_GCM_16_128"
    assert status.tunnel_state("peer-192.0.72.2-tunnel-vti") == "up"


def test_shunted_connection_and_sas_without_children():
    status = statusall(f"{DANOS}/strongswan-5.3.5-statusall-shunted-no-children.txt")
    [shunt] = status.shunts
    assert (shunt.name, shunt.mode, shunt.local_ts, shunt.remote_ts) == (
        "shunt-peer-10.10.2.3-tunnel-1", "DROP", ["10.10.1.0/24"], ["10.10.3.0/24"])
    assert status.connections[1].local_auth == "public key authentication"
    assert status.connections[1].children[0].mode == "DROP"
    assert [len(s.children) for s in status.ike_sas] == [1, 0, 0, 0]
    assert status.tunnel_state("peer-10.10.2.3-tunnel-1") == "up"


def test_transport_rekeyed_without_configured_connections():
    status = statusall(f"{DANOS}/strongswan-5.3.5-statusall-transport-rekeyed-no-connections.txt")
    assert status.connections == []
    [ike] = status.ike_sas
    assert [(c.unique_id, c.state, c.mode, c.reqid) for c in ike.children] == [
        (1, "REKEYED", "TRANSPORT", 1), (2, "INSTALLED", "TRANSPORT", 1)]
    assert ike.children[1].local_ts == ["6.5.5.1/32[gre]"]
    assert status.tunnel_state("vpnprof-tunnel-tun0", "6.5.5.1/32[gre]", ["6.5.5.10[gre]"]) == "up"


def test_hub_with_five_spokes():
    status = statusall(f"{DANOS}/strongswan-5.3.5-statusall-hub-five-spokes.txt")
    assert status.uptime == "22 hours"
    assert len(status.ike_sas) == 5 and status.up_count == 5
    assert [s.unique_id for s in status.sas_for("vpnprof-tunnel-tun1")] == [14, 13, 11, 4]
    assert [s.children[-1].encapsulation for s in status.ike_sas] == ["udp", "udp", "esp", "esp", "udp"]
    assert status.ike_sas[0].remote_port == 4500 and status.ike_sas[0].remote_id == "10.10.4.63"
    assert status.ike_sas[3].established_seconds_ago == 22 * 3600


# --- ChromiumOS, strongSwan 5.7.2 -----------------------------------------------------------------

def test_chromiumos_right_aligned_names_and_transport():
    status = statusall("strongswan-5.7.2-chromiumos/strongswan-5.7.2-stroke-statusall-l2tp-transport.txt")
    assert status.daemon_version == "5.7.2"
    [conn] = status.connections
    assert (conn.name, conn.local_address, conn.remote_address, conn.mode) == (
        "managed", "%any", "10.0.0.1", "TRANSPORT")
    assert conn.local_ts == ["dynamic[udp/l2tp]"]
    [ike] = status.ike_sas
    assert (ike.name, ike.established_seconds_ago, ike.initiator) == ("managed", 180, True)
    [child] = ike.children
    assert (child.mode, child.encapsulation, child.spi_in, child.spi_out) == (
        "TRANSPORT", "udp", "c422affe", "c5ff79b3")
    assert (child.bytes_in, child.packets_in, child.last_in_seconds_ago) == (4034, 57, 19)
    assert (child.bytes_out, child.packets_out, child.last_out_seconds_ago) == (42409, 569, 1)
    assert child.local_ts == ["1.2.3.4/32[udp/l2tp]"]
    assert status.tunnel_state("managed", "1.2.3.4[udp/l2tp]", "10.0.0.1/32[udp/l2tp]") == "up"


# --- swanctl, public examples ---------------------------------------------------------------------

def test_swanctl_docs_example_kernel_esp():
    status = parse_swanctl_list_sas(read(f"{SWANCTL}/strongswan-docs-swanctl-list-sas-tunnel-esp.txt"))
    [ike] = status.ike_sas
    assert (ike.name, ike.initiator, ike.local_id, ike.remote_id) == (
        "home", True, "carol@strongswan.org", "moon.strongswan.org")
    assert ike.rekey == "rekeying in 14043s"
    [child] = ike.children
    assert (child.name, child.encapsulation, child.protocol, child.proposal) == ("net", "esp", "ESP", "AES_GCM_16-128")
    assert (child.spi_in, child.bytes_in, child.packets_in, child.spi_out, child.bytes_out) == (
        "c8931e89", 84, 1, "cee78125", 84)
    assert status.tunnel_state("home", "192.168.0.100/32", "10.1.0.0/16") == "up"


def test_swanctl_connecting_with_active_tasks():
    status = parse_swanctl_list_sas(read(f"{SWANCTL}/strongswan-5.5.3-swanctl-list-sas-connecting.txt"))
    [ike] = status.ike_sas
    assert (ike.state, ike.unique_id, ike.spi_r, ike.established_seconds_ago) == (
        "CONNECTING", 22, "0000000000000000", None)
    assert (ike.local_id, ike.local_address, ike.local_port) == ("%any", "10.42.2.38", 500)
    assert len(ike.tasks_active) == 9 and ike.tasks_active[0] == "IKE_VENDOR"
    assert status.tunnel_state("aaa") == "connecting"


def test_swanctl_legacy_format():
    status = parse_swanctl_list_sas(read(f"{SWANCTL}/strongswan-legacy-swanctl-list-sas-rancher-two-sas.txt"))
    first, second = status.ike_sas
    assert (first.unique_id, first.spi_i, first.spi_r, first.initiator) == (
        2732, "adbf8bd39b23fd5b", "cf503a5ea2e22817", None)
    assert (first.local_address, first.local_port, first.remote_address) == ("172.17.0.2", None, "138.201.55.14")
    assert first.proposal == "AES_CBC-128/AES_XCBC_96/PRF_AES128_XCBC/MODP_2048"
    child = first.children[0]
    assert (child.name, child.reqid, child.encapsulation, child.installed_seconds_ago) == (
        "child-138.201.55.14", 1234, "udp", 2214320)
    assert (child.bytes_in, child.packets_in, child.last_in_seconds_ago) == (0, 0, None)
    assert second.children[0].spi_out == "c887d15f"
    assert status.tunnel_state("conn-138.201.55.14") == "up"


# --- ipsec up / down ------------------------------------------------------------------------------

def test_ipsec_up_established():
    result = parse_ipsec_up_output(read(f"{LAB}/strongswan-5.9.8-ipsec-up-onprem-established.txt"))
    assert (result["established"], result["failed"], result["duplicate_child"]) == (True, False, False)
    assert result["messages"][0] == "initiating IKE_SA onprem-aws[2] to 198.51.100.1"
    assert result["messages"][-1] == "connection 'onprem-aws' established successfully"


def test_ipsec_up_duplicate_child_says_failed_although_the_tunnel_is_up():
    result = parse_ipsec_up_output(read(f"{LAB}/strongswan-5.9.8-ipsec-up-aws-duplicate-child.txt"))
    assert (result["established"], result["failed"], result["duplicate_child"]) == (False, True, True)
    assert len(result["messages"]) == 2


def test_ipsec_down_closed():
    result = parse_ipsec_up_output(read(f"{LAB}/strongswan-5.9.8-ipsec-down-aws.txt"))
    assert result["closed"] is True and result["failed"] is False
    assert "IKE_SA [1] closed successfully" in result["messages"]


@pytest.mark.parametrize("side", ["aws", "onprem"])
def test_ipsec_down_with_nothing_to_close_prints_nothing(side):
    result = parse_ipsec_up_output(read(f"{LAB}/strongswan-5.9.8-ipsec-down-{side}-recovery-empty.txt"))
    assert result == {"established": False, "failed": False, "duplicate_child": False,
                      "peer_not_responding": False, "retransmits": 0, "closed": False, "messages": []}


def test_log_prefixed_peer_not_responding():
    result = parse_ipsec_up_output(
        read("strongswan-charon-log-public/strongswan-android-logcat-peer-not-responding.txt"))
    assert result["peer_not_responding"] is True
    assert result["failed"] is True and result["established"] is False
    assert result["retransmits"] == 3
    assert "giving up after 3 retransmits" in result["messages"]
    assert "establishing IKE_SA failed, peer not responding" in result["messages"]
    assert result["messages"][7].startswith("sending packet: from 10.215.117.159[39939]")


# --- refusing what is not status output -----------------------------------------------------------

NOT_RUNNING = "connecting to 'unix:///var/run/charon.ctl' failed: No such file or directory\n"


@pytest.mark.parametrize("text", ["", "\n\n", "hello world\n", NOT_RUNNING])
def test_statusall_refuses_empty_garbage_and_errors(text):
    with pytest.raises(VpnStatusParseError) as excinfo:
        parse_ipsec_statusall(text)
    assert "Hint:" in str(excinfo.value)


def test_statusall_error_message_points_at_the_daemon():
    with pytest.raises(VpnStatusParseError, match="charon daemon is not running"):
        parse_ipsec_statusall(NOT_RUNNING)


def test_statusall_refuses_swanctl_output():
    with pytest.raises(VpnStatusParseError):
        parse_ipsec_statusall(read(f"{LAB}/strongswan-5.9.8-swanctl-list-sas-aws-up.txt"))


def test_statusall_without_the_sa_header_is_refused():
    text = read(f"{LAB}/strongswan-5.9.8-statusall-aws-up.txt")
    text = text.replace("Security Associations (1 up, 0 connecting):\n", "")
    with pytest.raises(VpnStatusParseError, match="Security Associations"):
        parse_ipsec_statusall(text)


def test_unknown_line_in_sa_section_is_refused_with_its_line_number():
    lines = read(f"{LAB}/strongswan-5.9.8-statusall-aws-up.txt").splitlines(keepends=True)
    lines.insert(17, "  something strongSwan never printed\n")
    with pytest.raises(VpnStatusParseError) as excinfo:
        parse_ipsec_statusall("".join(lines))
    assert excinfo.value.line_no == 18
    assert "unrecognised line in the Security Associations section" in str(excinfo.value)


def test_unknown_child_state_is_refused():
    text = read(f"{LAB}/strongswan-5.9.8-statusall-aws-up.txt").replace("INSTALLED, TUNNEL", "FROBNICATED, TUNNEL")
    with pytest.raises(VpnStatusParseError, match="unknown CHILD_SA state 'FROBNICATED'"):
        parse_ipsec_statusall(text)


def test_detail_line_without_its_ike_sa_is_refused():
    text = read(f"{LAB}/strongswan-5.9.8-statusall-aws-up.txt")
    text = "".join(line for line in text.splitlines(keepends=True) if "ESTABLISHED 1 second ago" not in line)
    with pytest.raises(VpnStatusParseError, match="without its IKE_SA state line"):
        parse_ipsec_statusall(text)


def test_extra_lines_outside_the_sa_section_are_tolerated():
    text = "no files found matching '/etc/strongswan.d/*.conf'\n" + read(f"{LAB}/strongswan-5.9.8-statusall-aws-up.txt")
    status = parse_ipsec_statusall(text)
    assert status.ignored_lines == ["no files found matching '/etc/strongswan.d/*.conf'"]
    assert status.tunnel_state("onprem-aws") == "up"


def test_ipsec_status_short_form_is_read():
    # `ipsec status` prints the SA section of statusall without the detail lines.
    full = read(f"{LAB}/strongswan-5.9.8-statusall-aws-up.txt").splitlines()
    start = full.index("Security Associations (1 up, 0 connecting):")
    detail = ("IKEv2 SPIs:", "IKE proposal:", "bytes_i")
    short = "\n".join(line for line in full[start:] if not any(d in line for d in detail))
    assert len(short.splitlines()) == 4
    status = parse_ipsec_statusall(short)
    assert status.daemon_version is None
    assert status.ike_sas[0].version is None
    assert status.tunnel_state("onprem-aws", "10.20.0.0/16", "192.168.64.0/24") == "up"


@pytest.mark.parametrize("text", [
    "hello world\n",
    "connecting to 'unix:///var/run/charon.vici' failed: No such file or directory\n",
    "Security Associations (0 up, 0 connecting):\n  none\n",
])
def test_swanctl_refuses_garbage_errors_and_statusall(text):
    with pytest.raises(VpnStatusParseError):
        parse_swanctl_list_sas(text)


def test_swanctl_unknown_child_line_is_refused():
    text = read(f"{LAB}/strongswan-5.9.8-swanctl-list-sas-aws-up.txt").replace("    local  10.20", "    lokal  10.20")
    with pytest.raises(VpnStatusParseError) as excinfo:
        parse_swanctl_list_sas(text)
    assert excinfo.value.line_no == 10


def test_swanctl_skips_plugin_noise_from_stderr():
    noise = "plugin 'sqlite': failed to load - sqlite_plugin_create not found and no plugin file available\n"
    status = parse_swanctl_list_sas(noise + read(f"{LAB}/strongswan-5.9.8-swanctl-list-sas-aws-up.txt"))
    assert status.tunnel_state("onprem-aws") == "up"


# --- selectors --------------------------------------------------------------------------------------

def test_normalize_selectors():
    assert normalize_selectors("10.20.0.5/16 192.168.64.1") == {"10.20.0.0/16", "192.168.64.1/32"}
    assert normalize_selectors(["192:168:0::1:1/128", "dynamic[udp/l2tp]"]) == {"192:168::1:1/128", "dynamic[udp/l2tp]"}
    assert normalize_selectors(["1.2.3.4[udp/l2tp]"]) == {"1.2.3.4/32[udp/l2tp]"}
    assert normalize_selectors(None) == frozenset()


# --- swanctl mode of the lab: child named apart, --list-conns, terminate/initiate outputs ---------------------------

SWMODE = "strongswan-5.9.8-lab-swanctl"


def test_swanctl_mode_up_is_up_only_for_the_named_child():
    status = parse_swanctl_list_sas(read(f"{SWMODE}/swanctl-list-sas-aws-up.txt"))
    [ike] = status.ike_sas
    assert ike.name == "onprem-aws" and [c.name for c in ike.children] == ["onprem-aws-net"]
    ts = (["10.20.0.0/16"], ["192.168.64.0/24"])
    assert status.tunnel_state("onprem-aws", *ts, child_name="onprem-aws-net") == "up"
    assert status.tunnel_state("onprem-aws", *ts, child_name="onprem-aws") == "connecting"
    assert status.tunnel_state("onprem-aws", *ts, child_name="other") == "connecting"
    assert parse_swanctl_list_sas(read(f"{SWMODE}/swanctl-list-sas-aws-down.txt")).tunnel_state(
        "onprem-aws", *ts, child_name="onprem-aws-net") == "down"


def test_swanctl_list_conns_gives_connections_and_their_children():
    assert parse_swanctl_list_conns(read(f"{SWMODE}/list-conns-aws.txt")) == {"onprem-aws": ["onprem-aws-net"]}
    assert parse_swanctl_list_conns("") == {}
    two = ("a: IKEv2, no reauthentication\n  local:  1.2.3.4\n  c1: TUNNEL, rekeying every 3600s\n"
           "  c2: TRANSPORT, rekeying every 3600s\nb: IKEv1/2, reauthentication every 3h\n  b: TUNNEL, x\n")
    assert parse_swanctl_list_conns(two) == {"a": ["c1", "c2"], "b": ["b"]}
    with pytest.raises(VpnStatusParseError):
        parse_swanctl_list_conns("connecting to 'unix:///var/run/charon.vici' failed: No such file or directory\n"
                                 "Error: connecting to 'default' URI failed: No such file or directory\n")


def test_swanctl_terminate_and_initiate_outputs_are_summarised():
    down = parse_ipsec_up_output(read(f"{SWMODE}/terminate-aws.txt"))
    assert down["closed"] and not down["failed"] and down["messages"][-1] == "terminate completed successfully"
    up = parse_ipsec_up_output(read(f"{SWMODE}/initiate-onprem.txt"))
    assert up["established"] and not up["failed"]
    dup = parse_ipsec_up_output(read(f"{SWMODE}/initiate-aws-already-up.txt"))
    assert dup["duplicate_child"] and not dup["established"]


def test_no_stroke_socket_is_charon_not_reachable():
    with pytest.raises(VpnStatusParseError):
        parse_ipsec_statusall(read(f"{SWMODE}/ipsec-statusall-aws-no-stroke.stdout"))
