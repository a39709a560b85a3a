"""`{secret: NAME}` passwords the Chaos Toolkit way (item 2 of "Install it like a product"): the experiment declares
a `secrets:` scope (env or vault, per chaoslib), the provider lists it, and chaoslib's own runner hands it to the
activity, whose inventory reference resolves from it. Run through `chaoslib.experiment.run_experiment` — no function
is called directly — with a probe that needs no network (database_credentials_resolve)."""
from __future__ import annotations

import ast
import inspect
import json
import textwrap
from importlib import import_module
from pathlib import Path

import pytest
import yaml
from chaoslib.experiment import ensure_experiment_is_valid, run_experiment

from drpoc_chaos.inventory import clear_cache

REPO = Path(__file__).resolve().parents[2]
SECRET_VALUE = "s3cr3t-Value-only-in-env"  # a test value, the one the journal must never show
INVENTORY = """\
version: 1
name: secret-test
ssh_defaults: {user: drpoc}
hosts:
  aws-vpn: {address: 127.0.0.1, port: 2201}
  aws-db: {address: 127.0.0.1, port: 2202}
  onprem-vpn: {address: 127.0.0.1, port: 2203}
  onprem-db: {address: 127.0.0.1, port: 2204}
mysql_defaults: {user: drpoc, password: {secret: %s}}
sites:
  aws:
    gateway: {host: aws-vpn, connection: c, local_subnet: 10.20.0.0/16, remote_subnet: 192.168.64.0/24}
    database: {role: source, host: aws-db, mysql: {address: 127.0.0.1, port: 13306}}
  onprem:
    gateway: {host: onprem-vpn, connection: c, local_subnet: 192.168.64.0/24, remote_subnet: 10.20.0.0/16}
    database: {role: replica, host: onprem-db, mysql: {address: 127.0.0.1, port: 13307}}
"""


def experiment(inventory: Path, provider_secrets: list[str] | None, secrets: dict) -> dict:
    provider = {"type": "python", "module": "drpoc_chaos.replication.probes", "func": "database_credentials_resolve"}
    if provider_secrets is not None:
        provider["secrets"] = provider_secrets
    probe = {"type": "probe", "name": "database-credentials-resolve", "tolerance": True, "provider": provider}
    return {"version": "1.0.0", "title": "the inventory's secret reaches the probe", "description": "test",
            "configuration": {"inventory": str(inventory)}, "secrets": secrets,
            "steady-state-hypothesis": {"title": "credentials", "probes": [probe]},
            "method": [dict(probe, name="again")]}


@pytest.fixture
def inventory(tmp_path):
    clear_cache()

    def write(reference: str = "mysql_password") -> Path:
        path = tmp_path / f"inv-{reference.replace('.', '-')}.yaml"
        path.write_text(INVENTORY % reference)
        return path
    return write


ENV_SECRET = {"drpoc": {"mysql_password": {"type": "env", "key": "DRPOC_TEST_MYSQL_PASSWORD"}}}


def run(exp: dict) -> dict:
    ensure_experiment_is_valid(exp)
    return run_experiment(exp, settings={})


def test_env_secret_reaches_the_probe_through_the_scope(inventory, monkeypatch):
    monkeypatch.setenv("DRPOC_TEST_MYSQL_PASSWORD", SECRET_VALUE)
    journal = run(experiment(inventory(), ["drpoc"], ENV_SECRET))
    assert journal["status"] == "completed" and journal["steady_states"]["before"]["steady_state_met"] is True
    assert [r["status"] for r in journal["run"]] == ["succeeded"] and journal["run"][0]["output"] is True
    assert SECRET_VALUE not in json.dumps(journal, default=str)


def test_scoped_name_picks_the_scope(inventory, monkeypatch):
    monkeypatch.setenv("DRPOC_TEST_MYSQL_PASSWORD", SECRET_VALUE)
    journal = run(experiment(inventory("drpoc.mysql_password"), ["drpoc"], ENV_SECRET))
    assert journal["steady_states"]["before"]["steady_state_met"] is True


def test_without_the_scope_in_the_provider_the_probe_says_what_to_declare(inventory, monkeypatch):
    """chaoslib gives a Python activity secrets only for the scopes its provider lists."""
    monkeypatch.setenv("DRPOC_TEST_MYSQL_PASSWORD", SECRET_VALUE)
    journal = run(experiment(inventory(), None, ENV_SECRET))
    assert journal["steady_states"]["before"]["steady_state_met"] is False and journal["status"] == "failed"
    error = journal["steady_states"]["before"]["probes"][0]["exception"][-1]
    assert "Chaos Toolkit secret 'mysql_password' not found" in error
    assert "sites.aws.database.mysql.password" in error and "its provider lists no `secrets:` scope" in error
    assert SECRET_VALUE not in json.dumps(journal, default=str)


def test_a_missing_environment_variable_is_refused_by_chaoslib_before_anything_runs(inventory, monkeypatch):
    from chaoslib.exceptions import InvalidExperiment
    monkeypatch.delenv("DRPOC_TEST_MYSQL_PASSWORD", raising=False)
    with pytest.raises(InvalidExperiment, match="DRPOC_TEST_MYSQL_PASSWORD"):
        ensure_experiment_is_valid(experiment(inventory(), ["drpoc"], ENV_SECRET))


def test_secret_given_in_a_var_file_overrides_the_declared_source(inventory):
    """`chaos run --var-file` with a `secrets:` section: chaoslib's extra vars replace the env lookup."""
    exp = experiment(inventory(), ["drpoc"], ENV_SECRET)
    journal = run_experiment(exp, settings={}, experiment_vars=({}, {"drpoc": {"mysql_password": SECRET_VALUE}}))
    assert journal["steady_states"]["before"]["steady_state_met"] is True


# --- the shipped experiments ---------------------------------------------------------------------------------

def _uses_secrets(module: str, func: str) -> bool:
    """Whether the activity's body passes `secrets` on (to db.py through services): it then needs the scope."""
    fn = inspect.unwrap(getattr(import_module(module), func))
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn))).body[0]
    assert isinstance(tree, ast.FunctionDef)
    return any(isinstance(n, ast.Name) and n.id == "secrets" for stmt in tree.body for n in ast.walk(stmt))


def _providers(exp: dict):
    ssh = exp.get("steady-state-hypothesis") or {}
    for activity in [*(ssh.get("probes") or []), *(exp.get("method") or []), *(exp.get("rollbacks") or [])]:
        yield activity["name"], activity["provider"]


@pytest.mark.parametrize("path", sorted((REPO / "experiments").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_experiment_declares_the_scope_every_credentialed_provider_lists(path):
    exp = yaml.safe_load(path.read_text())
    assert exp["secrets"] == {"drpoc": {}}, "the lab's passwords are files: the scope is declared, empty"
    for name, provider in _providers(exp):
        if _uses_secrets(provider["module"], provider["func"]):
            assert provider.get("secrets") == ["drpoc"], f"{name}: {provider['func']} opens MySQL connections"
        else:
            assert "secrets" not in provider, f"{name}: {provider['func']} needs no credentials"
    ensure_experiment_is_valid(exp)  # what `chaos validate` checks, secrets included
