"""Least privilege on the lab's hosts: the drill user (`drpoc`, what the drill logs in as) may run the gateway helper
with sudo and nothing else — no shell, no setsid, no ipsec, no swanctl — and the helper refuses hostile arguments
on the real gateway before anything runs. Permissions are asked with `sudo -n -l COMMAND`, which answers without
running the command. A missing or outdated helper stops a drill before anything is touched, with the fix."""
from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest
from chaoslib.exceptions import ActivityFailed

from drpoc_chaos import remote
from drpoc_chaos.inventory import load_inventory
from drpoc_chaos.lab.topology import Paths
from drpoc_chaos.services import gateway, gateway_helper
from drpoc_chaos.vpn import actions as vpn_actions
from drpoc_chaos.vpn import probes as vpn_probes

from .support import CFG, INVENTORY, variant

pytestmark = pytest.mark.lab
HELPER = "/usr/local/sbin/drpoc-gw"
NOT_ALLOWED = [["id"], ["/bin/sh", "-c", "id"], ["sh"], ["/usr/bin/setsid", "-f", "id"], ["/usr/bin/pkill", "x"],
               ["/usr/sbin/ipsec", "statusall"], ["/usr/sbin/ipsec", "down", "onprem-aws"],
               ["/usr/sbin/swanctl", "--list-sas"], ["/usr/bin/tee", "/usr/local/sbin/drpoc-gw"],
               ["/bin/cp", "/bin/sh", "/usr/local/sbin/drpoc-gw"], ["/usr/bin/env", "sh"]]


def host(name: str):
    return load_inventory(INVENTORY).host(name)


def may_run(h, command: list[str]) -> bool:
    """Does sudo let the login user run `command` without a password? (`sudo -n -l CMD` never runs CMD.)"""
    r = remote.run(h, "sudo -n -l " + shlex.join(command))
    return r.exit_status == 0 and r.stdout.strip() != ""


@pytest.mark.parametrize("name", ["aws-vpn", "onprem-vpn"])
def test_the_drill_user_may_run_the_helper_and_nothing_else(ready, name):
    h = host(name)
    assert h.user == "drpoc"
    assert may_run(h, [HELPER, "status", "ipsec"])
    for command in NOT_ALLOWED:
        assert not may_run(h, command), command
    listing = remote.run(h, "sudo -n -l").stdout
    rules = [line.strip() for line in listing.splitlines() if line.startswith("    (")]
    assert rules == [f"(root) NOPASSWD: {HELPER}"], listing


@pytest.mark.parametrize("name", ["aws-db", "onprem-db"])
def test_the_drill_user_has_no_sudo_at_all_on_the_database_hosts(ready, name):
    h = host(name)
    for command in NOT_ALLOWED:
        assert not may_run(h, command), command
    # the helper exists on gateways only
    assert remote.run(h, ["test", "-e", HELPER]).exit_status == 1


@pytest.mark.parametrize("name", ["aws-vpn", "onprem-vpn"])
def test_the_helper_is_roots_and_is_the_shipped_script(ready, name):
    h = host(name)
    stat = remote.run(h, ["stat", "-c", "%u %g %a", HELPER, "/usr/local/sbin"], check=True).stdout.split("\n")
    assert stat[0] == "0 0 755" and stat[1].startswith("0 0 ") and stat[1].split()[2] in ("755", "555")
    assert remote.run(h, ["test", "-w", HELPER]).exit_status == 1
    assert remote.run(h, ["cat", HELPER], check=True).stdout == gateway_helper.script_text()


@pytest.mark.parametrize("args", [["down", "ipsec", "--help"], ["down", "ipsec", "onprem-aws;reboot"],
                                  ["up", "swanctl", "onprem-aws", "-+/etc/shadow"], ["status", "--help"],
                                  ["deadman-arm", "ipsec", "onprem-aws", "onprem-aws", "99999999", "r1"],
                                  ["lock-acquire", "r1", "60", "x';id;'", "c"], ["exec", "id"]])
def test_the_helper_on_a_real_gateway_refuses_hostile_arguments(ready, args):
    h = host("aws-vpn")
    r = remote.run(h, [HELPER, *args], sudo=True)
    assert r.exit_status == 2 and r.stderr.startswith("drpoc-gw: "), (args, r.stdout, r.stderr)
    # nothing happened: the tunnel is up, no lock, no switch
    assert vpn_probes.tunnel_established("fault", configuration=CFG) is True
    assert remote.run(h, ["test", "-e", "/run/drpoc-drill.lock"]).exit_status == 1


def test_a_hostile_connection_in_an_experiment_never_reaches_the_gateway(ready):
    for bad in ("--help", "onprem-aws; rm -rf /"):
        with pytest.raises(ActivityFailed) as caught:
            vpn_actions.tunnel_down(site="fault", connection=bad, configuration=CFG)
        assert "not a valid name" in str(caught.value)
    assert vpn_probes.tunnel_established("fault", configuration=CFG) is True


def test_a_helper_sudo_does_not_allow_is_refused_with_the_rule_to_add(ready, tmp_path):
    cfg = variant(tmp_path, "other-path", lambda d: [s["gateway"].update(helper="/usr/local/sbin/drpoc-gw2")
                                                    for s in d["sites"].values()])
    gateway_helper.forget_checks()
    with pytest.raises(ActivityFailed) as caught:
        vpn_probes.tunnel_status("fault", configuration=cfg)
    text = str(caught.value)
    assert "aws-vpn" in text and "/usr/local/sbin/drpoc-gw2" in text and "NOPASSWD" in text


def test_a_missing_or_outdated_helper_stops_before_anything_is_touched(ready, tmp_path):
    """Logged in as root (no sudo in the way), the helper's own checks speak: not installed → the install command;
    an older version → the version this drpoc needs."""
    sbin = Paths().host_sbin("aws-vpn")
    old = sbin / "drpoc-gw-old"
    old.write_text("#!/bin/sh\necho 'drpoc-gw 0'\n")
    old.chmod(0o755)
    try:
        for path, words in (("/usr/local/sbin/drpoc-gw-missing", ["not installed", "drpoc gateway-helper"]),
                            (str(old).replace(str(sbin), "/usr/local/sbin"),
                             ["version 0", f"needs version {gateway_helper.HELPER_VERSION}"])):
            def as_root(d, path=path):
                d["ssh_defaults"].update(user="root", sudo=False)
                d["sites"]["aws"]["gateway"]["helper"] = path
            cfg = variant(tmp_path, "root-" + path.rsplit("/", 1)[-1], as_root)
            gateway_helper.forget_checks()
            gateway.forget_controls()
            with pytest.raises(ActivityFailed) as caught:
                vpn_actions.tunnel_down(site="fault", configuration=cfg)
            for w in words:
                assert w in str(caught.value), str(caught.value)
            assert "aws-vpn" in str(caught.value)
            assert vpn_probes.tunnel_established("fault", configuration=CFG) is True
    finally:
        old.unlink()
        gateway_helper.forget_checks()


def test_lab_status_reads_the_tunnel_through_the_helper(ready):
    r = subprocess.run([sys.executable, "-m", "drpoc_chaos.cli", "lab", "status", "--json"], capture_output=True,
                       text=True, timeout=60)
    st = json.loads(r.stdout)
    assert st["ipsec_mode"] in ("ipsec", "swanctl")
    assert all(t["control"] == st["ipsec_mode"] and t["state"] == "up" for t in st["tunnels"].values())
