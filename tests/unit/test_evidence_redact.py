"""Redaction: no secret value reaches the archive, references to secrets survive."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from drpoc_chaos.evidence.archive import archive_journal
from drpoc_chaos.evidence.redact import REDACTED, is_reference, is_secret_key, redact

JOURNALS = Path(__file__).parent / "journals"


@pytest.fixture(autouse=True)
def _no_signing_env(monkeypatch):
    monkeypatch.delenv("DRPOC_SIGNING_KEY_FILE", raising=False)


def test_secret_values_replaced_in_every_string_and_key():
    obj = {"cmd": "mysql -uroot -phunter2pw -e 'x'", "list": ["a hunter2pw b", 5, None, True],
           "nested": {"deeper": [{"msg": "pw=hunter2pw; psk=Zm9vYmFyYmF6"}]}, "hunter2pw": "key named by it"}
    out = redact(obj, ["hunter2pw", "Zm9vYmFyYmF6"])
    text = json.dumps(out)
    assert "hunter2pw" not in text and "Zm9vYmFyYmF6" not in text
    assert out["cmd"] == "mysql -uroot -p*** -e 'x'"
    assert out["list"] == ["a *** b", 5, None, True]
    assert out["nested"]["deeper"][0]["msg"] == "pw=***; psk=***"
    assert out[REDACTED] == "key named by it"


def test_short_secrets_are_ignored_and_longest_match_wins():
    out = redact({"a": "abc abcd abcdef"}, ["abc", "abcd", "abcdef"])
    assert out["a"] == "abc *** ***"


@pytest.mark.parametrize("key", ["password", "PASSWORD", "mysql_password", "passwd", "psk", "vpn_psk", "secret",
                                 "Client-Secret", "private_key", "api_token", "Token"])
def test_secret_looking_keys_are_hidden(key):
    assert is_secret_key(key)
    assert redact({key: "plain-value-123"}) == {key: REDACTED}
    assert redact({key: 123456}) == {key: REDACTED}


@pytest.mark.parametrize("ref", [{"env": "MYSQL_PWD"}, {"file": "/var/lib/drpoc-lab/secrets/mysql_password"},
                                 {"secret": "mysql"}, {"type": "env", "key": "DRPOC_MYSQL_PASSWORD"},
                                 {"type": "vault", "path": "secret/data/drpoc", "key": "password"}])
def test_references_are_kept(ref):
    assert is_reference(ref)
    assert redact({"password": ref}) == {"password": ref}


@pytest.mark.parametrize("not_ref", [{"env": "has space"}, {"value": "x"}, {"type": "inline", "key": "x"},
                                     {"env": 12345}, {}])
def test_lookalike_references_are_not_trusted(not_ref):
    assert not is_reference(not_ref)


def test_container_under_secret_key_keeps_structure_hides_leaves():
    obj = {"secrets": {"mysql": {"user": "repl", "password": {"env": "MYSQL_PWD"}},
                       "vpn": {"psk": "0sLongPsk==", "rounds": 3, "enabled": True, "none": None}}}
    out = redact(obj)
    assert out == {"secrets": {"mysql": {"user": REDACTED, "password": {"env": "MYSQL_PWD"}},
                               "vpn": {"psk": REDACTED, "rounds": REDACTED, "enabled": True, "none": None}}}


def test_value_found_under_a_secret_key_is_scrubbed_everywhere():
    obj = {"configuration": {"mysql_password": "S3cr3t-Pw"},
           "run": [{"output": "ran: mysql -pS3cr3t-Pw -h db"}]}
    out = redact(obj)
    assert out["configuration"]["mysql_password"] == REDACTED
    assert out["run"][0]["output"] == "ran: mysql -p*** -h db"


def test_numbers_equal_to_a_secret_are_hidden_and_input_untouched():
    obj = {"pin": 98765432, "count": 3, "tuple": ("x", "98765432")}
    before = copy.deepcopy(obj)
    out = redact(obj, ["98765432"])
    assert out == {"pin": REDACTED, "count": 3, "tuple": ["x", REDACTED]}
    assert obj == before


def test_archived_journal_holds_no_secret(tmp_path):
    leaky = json.loads((JOURNALS / "with_secrets.json").read_text())
    secrets = ["S3cr3t-Replica-Pw!", "0sVeryLongPreSharedKey=="]
    raw = json.dumps(leaky)
    assert all(s in raw for s in secrets)  # the sample really is leaky
    entry = archive_journal(leaky, tmp_path, secrets=["an-unrelated-secret"])
    stored = entry.path.read_text()
    assert not any(s in stored for s in secrets)
    data = json.loads(stored)
    conf = data["experiment"]["configuration"]
    assert conf["mysql_password"] == REDACTED
    assert conf["psk_ref"] == {"file": "/etc/ipsec.d/onprem-aws.psk"}
    assert data["experiment"]["secrets"]["vpn"] == {"psk": REDACTED, "token": {"env": "VPN_TOKEN"}}
    assert data["experiment"]["secrets"]["mysql"]["password"] == {"type": "env", "key": "DRPOC_MYSQL_PASSWORD"}
    assert "-p*** -h 10.20.11.123" in data["run"][1]["output"]["stdout"]
    # The drill's facts are untouched.
    assert data["drpoc"] == leaky["drpoc"]


def test_a_providers_secret_scopes_are_names_not_secrets():
    """Every shipped experiment lists `secrets: [drpoc]` in its providers (Chaos Toolkit scope names). Read as secret
    values they would make "drpoc" a secret — and the archived journal would lose its own `drpoc` key."""
    journal = {"experiment": {"secrets": {"drpoc": {"mysql_password": {"type": "env", "key": "DRPOC_MYSQL_PASSWORD"},
                                                    "inline_token": "s3cr3t-inline-t0ken"}},
                              "method": [{"provider": {"func": "write_ping", "secrets": ["drpoc"]}}]},
               "drpoc": {"verdict": {"status": "passed"}, "note": "s3cr3t-inline-t0ken leaked in a message"}}
    out = redact(journal)
    assert out["drpoc"]["verdict"] == {"status": "passed"}
    assert out["experiment"]["method"][0]["provider"]["secrets"] == ["drpoc"]
    declared = out["experiment"]["secrets"]["drpoc"]
    assert declared["mysql_password"] == {"type": "env", "key": "DRPOC_MYSQL_PASSWORD"}
    assert declared["inline_token"] == "***" and "s3cr3t-inline-t0ken" not in json.dumps(out)
    # a list under `secrets` that is not made of names is still hidden
    assert redact({"secrets": ["hunter2 with spaces!"]})["secrets"] == ["***"]
