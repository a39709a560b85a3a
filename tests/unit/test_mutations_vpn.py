"""Tunnel state pinned to strongSwan's IKE_SA and CHILD_SA states (mutation-killing tests).

Each test here exists because a plausible bug passed the rest of the unit suite: a `tunnel_state` that ignores the
IKE_SA state (DELETING / REKEYED counted as up), one that ignores the CHILD_SA state, a probe that takes
"connecting" for "up", a probe that forgets the inventory's traffic selectors.

The texts are the lab's recorded `ipsec statusall` / `swanctl --list-sas` (tests/fixtures/strongswan-5.9.8-lab)
with one state word changed, printed the way strongSwan prints that state (stroke_list.c `log_ike_sa`: the
"N seconds ago" and the rekey/reauth times only for ESTABLISHED; `log_child_sa`: SPIs and the usage line only for
INSTALLED, "expires in" for REKEYING/REKEYED); the swanctl texts change the state words only and drop the
`established` line of a non-ESTABLISHED IKE_SA. (No recording of an IKE_SA DELETING, REKEYED or PASSIVE exists in
tests/fixtures; the REKEYED/REKEYING CHILD_SAs and CONNECTING IKE_SAs that do exist are used as recorded.) Each
derivation checks that the recorded line it edits is still there, so a changed fixture fails loudly instead of
silently testing nothing. All of it goes through the real parsers; the probe tests replace only the SSH call (`run`
as services.gateway imported it).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from drpoc_chaos.remote import CommandResult
from drpoc_chaos.services import gateway as gateway_service
from drpoc_chaos.services import gateway_helper
from drpoc_chaos.vpn import probes
from drpoc_chaos.vpn.status import CHILD_STATES, IKE_STATES, VpnStatus, parse_ipsec_statusall, parse_swanctl_list_sas

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
LAB = FIXTURES / "strongswan-5.9.8-lab"
INVENTORY = str(Path(__file__).resolve().parent / "inventories" / "lab.yaml")
CONN = "onprem-aws"
AWS_TS = ("10.20.0.0/16", "192.168.64.0/24")       # (local, remote) as the AWS gateway sees them
ONPREM_TS = ("192.168.64.0/24", "10.20.0.0/16")

# --- the recorded lines the derivations edit (strongswan-5.9.8-statusall-aws-up.txt) --------------------------
IKE_LINE = "  onprem-aws[1]: ESTABLISHED 1 second ago, 198.51.100.1[198.51.100.1]...203.0.113.1[203.0.113.1]\n"
SPI_LINE = ("  onprem-aws[1]: IKEv2 SPIs: a943b11f2f32b5cd_i 85e5cac4b4672543_r*, "
            "pre-shared key reauthentication in 7 hours\n")
CHILD_LINE = "  onprem-aws{1}:  INSTALLED, TUNNEL, reqid 1, ESP in UDP SPIs: faf1fc25_i 724ab19e_o\n"
USAGE_LINE = ("  onprem-aws{1}:  AES_CBC_256/HMAC_SHA2_256_128, 1515 bytes_i (17 pkts, 1s ago), "
              "2632 bytes_o (16 pkts, 1s ago), rekeying in 42 minutes\n")
SA_HEADER = "Security Associations (1 up, 0 connecting):\n"

# --- and in strongswan-5.9.8-swanctl-list-sas-aws-up.txt ----------------------------------------------------------
SW_IKE_LINE = "onprem-aws: #1, ESTABLISHED, IKEv2, a943b11f2f32b5cd_i 85e5cac4b4672543_r*\n"
SW_ESTABLISHED_LINE = "  established 1s ago, reauth in 28138s\n"
SW_CHILD_LINE = "  onprem-aws: #1, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_CBC-256/HMAC_SHA2_256_128\n"


def _read(name: str) -> str:
    return (LAB / name).read_text(encoding="utf-8")


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"the recorded fixture changed: {old!r} is not there exactly once"
    return text.replace(old, new)


def statusall_text(ike_state: str = "ESTABLISHED", child_state: str = "INSTALLED",
                   name: str = "strongswan-5.9.8-statusall-aws-up.txt") -> str:
    """The recorded AWS-side statusall with the IKE_SA and CHILD_SA in the given states."""
    assert ike_state in IKE_STATES and child_state in CHILD_STATES
    text = _read(name)
    if ike_state != "ESTABLISHED":
        text = _replace_once(text, IKE_LINE, IKE_LINE.replace("ESTABLISHED 1 second ago", ike_state))
        text = _replace_once(text, SPI_LINE, SPI_LINE.split(", ")[0] + "\n")
        up, connecting = (0, 1) if ike_state in ("CREATED", "CONNECTING", "PASSIVE") else (0, 0)
        text = _replace_once(text, SA_HEADER, f"Security Associations ({up} up, {connecting} connecting):\n")
    if child_state != "INSTALLED":
        new = f"  onprem-aws{{1}}:  {child_state}, TUNNEL, reqid 1"
        if child_state in ("REKEYING", "REKEYED"):
            new += ", expires in 5 minutes"
        text = _replace_once(text, CHILD_LINE, new + "\n")
        text = _replace_once(text, USAGE_LINE, "")
    return text


def statusall(ike_state: str = "ESTABLISHED", child_state: str = "INSTALLED") -> VpnStatus:
    status = parse_ipsec_statusall(statusall_text(ike_state, child_state))
    # the derivation really produced the states asked for (a parser bug must not make these tests vacuous)
    [ike] = status.ike_sas
    assert (ike.state, [c.state for c in ike.children]) == (ike_state, [child_state])
    return status


def swanctl(ike_state: str = "ESTABLISHED", child_state: str = "INSTALLED") -> VpnStatus:
    text = _read("strongswan-5.9.8-swanctl-list-sas-aws-up.txt")
    if ike_state != "ESTABLISHED":
        text = _replace_once(text, SW_IKE_LINE, SW_IKE_LINE.replace("ESTABLISHED", ike_state))
        text = _replace_once(text, SW_ESTABLISHED_LINE, "")
    if child_state != "INSTALLED":
        text = _replace_once(text, SW_CHILD_LINE, SW_CHILD_LINE.replace("INSTALLED", child_state))
    status = parse_swanctl_list_sas(text)
    [ike] = status.ike_sas
    assert (ike.state, [c.state for c in ike.children]) == (ike_state, [child_state])
    return status


# --------------------------------------------------------------------------------------------------------------
# IKE_SA state, CHILD_SA INSTALLED with the right selectors

IKE_EXPECTED = {
    "ESTABLISHED": "up",
    "REKEYING": "up",          # an IKE_SA being rekeyed keeps its CHILD_SAs and their traffic (documented choice)
    "CREATED": "connecting",
    "CONNECTING": "connecting",
    "PASSIVE": "connecting",
    "REKEYED": "down",         # replaced by a new IKE_SA: on its way out
    "DELETING": "down",
    "DESTROYING": "down",
}


def test_every_ike_state_strongswan_knows_is_classified():
    assert set(IKE_EXPECTED) == IKE_STATES


@pytest.mark.parametrize("ike_state, expected", sorted(IKE_EXPECTED.items()))
def test_tunnel_state_follows_the_ike_sa_state_in_statusall(ike_state, expected):
    status = statusall(ike_state=ike_state)
    assert status.tunnel_state(CONN, *AWS_TS) == expected
    assert status.tunnel_state(CONN) == expected   # with or without selectors: the IKE_SA state decides


@pytest.mark.parametrize("ike_state, expected", sorted(IKE_EXPECTED.items()))
def test_tunnel_state_follows_the_ike_sa_state_in_swanctl(ike_state, expected):
    assert swanctl(ike_state=ike_state).tunnel_state(CONN, *AWS_TS) == expected


@pytest.mark.parametrize("ike_state", ["DELETING", "REKEYED", "DESTROYING"])
def test_an_ike_sa_on_its_way_out_next_to_an_established_one(ike_state):
    """IKE_SA rekeying: for a moment the old SA (REKEYED / DELETING) and the new one are both listed. The tunnel
    is up because of the new one only: alone, the old one with the very same CHILD_SA is down."""
    old = statusall(ike_state=ike_state)
    assert old.tunnel_state(CONN, *AWS_TS) == "down"
    new = statusall()
    both = VpnStatus(source="statusall", ike_sas=[old.ike_sas[0], new.ike_sas[0]])
    assert both.tunnel_state(CONN, *AWS_TS) == "up"
    only_old = VpnStatus(source="statusall", ike_sas=[old.ike_sas[0]])
    assert only_old.tunnel_state(CONN, *AWS_TS) == "down"


# --------------------------------------------------------------------------------------------------------------
# CHILD_SA state under an ESTABLISHED IKE_SA

CHILD_EXPECTED = {
    "INSTALLED": "up",
    "REKEYING": "up",       # still carries traffic while its successor is negotiated (documented choice)
    "UPDATING": "up",       # MOBIKE address update: still installed
    "CREATED": "connecting",
    "ROUTED": "connecting",
    "INSTALLING": "connecting",
    "REKEYED": "connecting",
    "RETRYING": "connecting",
    "DELETING": "connecting",
    "DELETED": "connecting",
    "DESTROYING": "connecting",
}


def test_every_child_state_strongswan_knows_is_classified():
    assert set(CHILD_EXPECTED) == CHILD_STATES


@pytest.mark.parametrize("child_state, expected", sorted(CHILD_EXPECTED.items()))
def test_tunnel_state_follows_the_child_sa_state_in_statusall(child_state, expected):
    status = statusall(child_state=child_state)
    assert status.tunnel_state(CONN, *AWS_TS) == expected
    assert status.tunnel_state(CONN) == expected


@pytest.mark.parametrize("child_state, expected", sorted(CHILD_EXPECTED.items()))
def test_tunnel_state_follows_the_child_sa_state_in_swanctl(child_state, expected):
    assert swanctl(child_state=child_state).tunnel_state(CONN, *AWS_TS) == expected


@pytest.mark.parametrize("ike_state", ["DELETING", "REKEYED"])
@pytest.mark.parametrize("child_state", ["DELETING", "REKEYED", "INSTALLING"])
def test_neither_state_up_is_never_up(ike_state, child_state):
    status = statusall(ike_state=ike_state, child_state=child_state)
    assert status.tunnel_state(CONN, *AWS_TS) == "down"


def test_rekeyed_children_next_to_an_installed_one_are_up_and_alone_are_not():
    """The recorded DANOS output: two REKEYED CHILD_SAs before the INSTALLED one. Without the INSTALLED one the
    same IKE_SA carries nothing."""
    text = (FIXTURES / "strongswan-5.2-5.3-danos" / "strongswan-5.2.1-statusall-ikev1-rekeyed-twice.txt").read_text()
    conn = "peer-192.168.248.248-tunnel-vti"
    status = parse_ipsec_statusall(text)
    assert status.tunnel_state(conn, "0.0.0.0/0", "0.0.0.0/0") == "up"
    [ike] = status.ike_sas
    ike.children = [c for c in ike.children if c.state != "INSTALLED"]
    assert [c.state for c in ike.children] == ["REKEYED", "REKEYED"]
    assert status.tunnel_state(conn, "0.0.0.0/0", "0.0.0.0/0") == "connecting"


# --------------------------------------------------------------------------------------------------------------
# The probes: tunnel_established / tunnel_status, with only the SSH call replaced


@pytest.fixture
def gateway(monkeypatch):
    """Make the gateway helper answer `status` with the given text (and `version`, `detect` as an installed helper
    on a stroke gateway does); records the status commands asked."""
    answers: dict[str, str] = {}
    asked: list[tuple[str, list[str]]] = []

    def fake_run(host, command, sudo=False, **_kwargs):
        assert sudo is True and command[0] == gateway_helper.HELPER_PATH
        verb = command[1]
        out = {"version": f"drpoc-gw {gateway_helper.HELPER_VERSION}", "detect": "ipsec"}.get(verb)
        if out is None:
            asked.append((host.name, list(command[1:])))
            out = answers[host.name]
        return CommandResult(host=host.name, command=" ".join(command), exit_status=0,
                             stdout=out, stderr="", duration=0.01)

    monkeypatch.setattr(gateway_helper, "run", fake_run)
    gateway_helper.forget_checks()
    gateway_service.forget_controls()
    yield answers, asked
    gateway_helper.forget_checks()
    gateway_service.forget_controls()


CONFIG = {"inventory": INVENTORY}


@pytest.mark.parametrize("ike_state, child_state, expected", [
    ("ESTABLISHED", "INSTALLED", True),
    ("REKEYING", "INSTALLED", True),
    ("DELETING", "INSTALLED", False),
    ("REKEYED", "INSTALLED", False),
    ("DESTROYING", "INSTALLED", False),
    ("CONNECTING", "INSTALLED", False),
    ("PASSIVE", "INSTALLED", False),
    ("ESTABLISHED", "REKEYED", False),
    ("ESTABLISHED", "DELETING", False),
    ("ESTABLISHED", "ROUTED", False),
    ("ESTABLISHED", "CREATED", False),
    ("ESTABLISHED", "INSTALLING", False),
])
def test_tunnel_established_probe(gateway, ike_state, child_state, expected):
    answers, asked = gateway
    answers["aws-vpn"] = statusall_text(ike_state, child_state)
    assert probes.tunnel_established("aws", configuration=CONFIG) is expected
    assert asked == [("aws-vpn", ["status", "ipsec"])]


@pytest.mark.parametrize("ike_state, child_state, state", [
    ("ESTABLISHED", "INSTALLED", "up"),
    ("DELETING", "INSTALLED", "down"),
    ("PASSIVE", "INSTALLED", "connecting"),
    ("ESTABLISHED", "DELETING", "connecting"),
])
def test_tunnel_status_probe_reports_the_state(gateway, ike_state, child_state, state):
    answers, _ = gateway
    answers["aws-vpn"] = statusall_text(ike_state, child_state)
    out = probes.tunnel_status("aws", configuration=CONFIG)
    assert (out["site"], out["host"], out["connection"], out["state"]) == ("aws", "aws-vpn", CONN, state)


def test_tunnel_established_probe_reads_swanctl_too(gateway):
    answers, asked = gateway
    answers["aws-vpn"] = _read("strongswan-5.9.8-swanctl-list-sas-aws-up.txt")
    assert probes.tunnel_established("aws", tool="swanctl", configuration=CONFIG) is True
    assert asked == [("aws-vpn", ["status", "swanctl"])]
    answers["aws-vpn"] = _replace_once(answers["aws-vpn"], SW_CHILD_LINE,
                                       SW_CHILD_LINE.replace("INSTALLED", "DELETING"))
    assert probes.tunnel_established("aws", tool="swanctl", configuration=CONFIG) is False


def test_tunnel_established_probe_checks_each_sites_own_selectors(gateway):
    """Both gateways name the connection onprem-aws; only the selectors tell the two views apart. The on-prem
    gateway's output read as the AWS one's (or the other way round) is not this site's tunnel."""
    answers, _ = gateway
    aws_up = _read("strongswan-5.9.8-statusall-aws-up.txt")
    onprem_up = _read("strongswan-5.9.8-statusall-onprem-up.txt")
    assert parse_ipsec_statusall(onprem_up).tunnel_state(CONN, *ONPREM_TS) == "up"
    answers.update({"aws-vpn": aws_up, "onprem-vpn": onprem_up})
    assert probes.tunnel_established("aws", configuration=CONFIG) is True
    assert probes.tunnel_established("onprem", configuration=CONFIG) is True
    answers.update({"aws-vpn": onprem_up, "onprem-vpn": aws_up})
    assert probes.tunnel_established("aws", configuration=CONFIG) is False
    assert probes.tunnel_established("onprem", configuration=CONFIG) is False
    assert probes.tunnel_status("aws", configuration=CONFIG)["state"] == "connecting"


@pytest.mark.parametrize("name", ["strongswan-5.9.8-statusall-aws-down.txt",
                                  "strongswan-5.9.8-statusall-aws-recovered.txt"])
def test_tunnel_established_probe_on_the_recorded_down_and_recovered_outputs(gateway, name):
    answers, _ = gateway
    answers["aws-vpn"] = _read(name)
    assert probes.tunnel_established("aws", configuration=CONFIG) is ("recovered" in name)


@pytest.mark.parametrize("name, parse, conn", [
    ("strongswan-5.2-5.3-danos/strongswan-5.2.1-statusall-ikev1-connecting.txt", parse_ipsec_statusall,
     "peer-192.168.100.6-tunnel-1"),
    ("strongswan-5.2-5.3-danos/strongswan-5.2.1-statusall-ikev1-established-no-child.txt", parse_ipsec_statusall,
     "peer-192.168.100.129-tunnel-1"),
    ("strongswan-swanctl-public/strongswan-5.5.3-swanctl-list-sas-connecting.txt", parse_swanctl_list_sas, "aaa"),
])
def test_recorded_connecting_outputs_are_connecting_not_up_nor_down(name, parse, conn):
    assert parse((FIXTURES / name).read_text(encoding="utf-8")).tunnel_state(conn) == "connecting"
