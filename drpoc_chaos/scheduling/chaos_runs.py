"""Running `chaos run` for a drill or a steady-state check: its command line and environment, then the
**subprocess** (chaoslib installs signal handlers and must own its main thread) in a session of its own, so a worker
that dies or is stopped does not interrupt the drill half-way: its control still restores the tunnel and archives
the journal. The journal is then judged by `verdicts`.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import yaml

from ..drill import safety
from ..inventory import load_inventory
from ..project import ProjectError
from ..services import gateway
from .settings import (
    _ENV_NAME_RE,
    DEFAULT_ARCHIVE_DIR,
    DEFAULT_CHECK_TIMEOUT_SECONDS,
    DEFAULT_DRILL_TIMEOUT_SECONDS,
    DEFAULT_EXPERIMENT,
    INTERRUPT_GRACE_SECONDS,
    SchedulingError,
    project_root,
    utc_now,
)
from .verdicts import (
    DrillResult,
    SteadyStateResult,
    evaluate_drill,
    evaluate_steady_state,
    redact_text,
    steady_state_experiment,
)

_VAR_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# ==============================================================================================================
# the chaos command line and environment (pure)


def chaos_var_args(overrides: Mapping[str, Any] | None) -> list[str]:
    """`--var KEY:TYPE=VALUE` arguments for configuration overrides (`None` values are left out).

    Types: int, float, else a string (booleans as "true"/"false", which the drill control parses)."""
    args: list[str] = []
    for key, value in (overrides or {}).items():
        if not isinstance(key, str) or not _VAR_KEY_RE.match(key):
            raise ValueError(f"configuration override {key!r}: keys are identifiers like objective_rto_seconds")
        if value is None:
            continue
        if isinstance(value, bool):
            args += ["--var", f"{key}={'true' if value else 'false'}"]
        elif isinstance(value, int):
            args += ["--var", f"{key}:int={value}"]
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"configuration override {key}: {value} is not a finite number")
            args += ["--var", f"{key}:float={value!r}"]
        elif isinstance(value, str):
            args += ["--var", f"{key}={value}"]
        else:
            raise ValueError(f"configuration override {key}: {type(value).__name__} values are not supported "
                             "(use a number or a string)")
    return args


def chaos_bin() -> str:
    """The `chaos` next to the running interpreter (the venv's), else the one on PATH."""
    candidate = Path(sys.executable).parent / "chaos"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("chaos")
    if not found:
        raise SchedulingError("the `chaos` command is not installed next to this Python nor on PATH")
    return found


def chaos_command(experiment: str | os.PathLike, journal_path: str | os.PathLike, *,
                  var_file: str | os.PathLike | None = None, overrides: Mapping[str, Any] | None = None,
                  run_options: Sequence[str] = (), chaos: str | None = None) -> list[str]:
    """`chaos --no-version-check --no-log-file run --journal-path J [run_options] [--var-file F] [--var …] E`."""
    cmd = [chaos or chaos_bin(), "--no-version-check", "--no-log-file", "run", "--journal-path", str(journal_path)]
    cmd += list(run_options)
    if var_file:
        cmd += ["--var-file", str(var_file)]
    cmd += chaos_var_args(overrides)
    cmd.append(str(experiment))
    return cmd


def drill_env(base: Mapping[str, str], *, inventory: str | os.PathLike | None = None,
              archive_dir: str | os.PathLike | None = None,
              secret_values: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the chaos subprocess: `base` plus DRPOC_INVENTORY / DRPOC_ARCHIVE_DIR and the secrets
    (which go nowhere else)."""
    env = dict(base)
    env["PYTHONUNBUFFERED"] = "1"
    if inventory:
        env["DRPOC_INVENTORY"] = str(Path(inventory).expanduser().absolute())
    if archive_dir:
        env["DRPOC_ARCHIVE_DIR"] = str(Path(archive_dir).expanduser().absolute())
    for name, value in (secret_values or {}).items():
        if not _ENV_NAME_RE.match(name):
            raise ValueError(f"secret_env: {name!r} is not an environment variable name")
        env[name] = value
    return env


def resolve_experiment(path: str | os.PathLike, repo: Path | None = None) -> Path:
    """An experiment path as given, else relative to the project (deployments run from the project's root)."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p.absolute()
    try:
        alt = project_root(repo) / p
    except ProjectError:  # not in a project: the path as given, which the caller reports as missing
        return p.absolute()
    return alt if alt.exists() else p.absolute()


# ==============================================================================================================
# running chaos (imperative)


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run_chaos(cmd: Sequence[str], *, env: Mapping[str, str], cwd: str | os.PathLike | None = None,
              timeout: float = DEFAULT_DRILL_TIMEOUT_SECONDS, log: Callable[[str], None] | None = None,
              secrets: Iterable[str] = (), grace: float = INTERRUPT_GRACE_SECONDS) -> tuple[int, str, str | None]:
    """Run `chaos` in its own session, stream its output (redacted) to `log`, and bound it in time: after
    `timeout` it gets SIGINT (the drill control restores what it took down and archives), `grace` seconds later
    SIGTERM, then SIGKILL. Returns (exit code, output tail, problem or None)."""
    secrets = list(secrets)
    lines: list[str] = []
    proc = subprocess.Popen(list(cmd), env=dict(env), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, text=True, errors="replace")

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = redact_text(_ANSI_RE.sub("", line.rstrip("\n")), secrets)
            lines.append(line)
            if len(lines) > 400:
                del lines[:100]
            if log:
                try:
                    log(line)
                except Exception:  # noqa: BLE001 — logging must not break the drill
                    pass

    t = threading.Thread(target=reader, name="chaos-output", daemon=True)
    t.start()
    problem = None
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        problem = f"the run exceeded timeout_seconds={timeout:g}: interrupted (SIGINT)"
        _kill_group(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            problem += f"; still running {grace:g} s later: SIGTERM"
            _kill_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                problem += "; then SIGKILL"
                _kill_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
    except BaseException:
        # our own process is being stopped (KeyboardInterrupt, cancellation): leave chaos running in its own
        # session so its control restores the tunnel and archives the journal; the dead-man's switch is the backstop
        raise
    t.join(timeout=5)
    return proc.returncode, "\n".join(lines[-40:]), problem


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def check_var_file(var_file: str | os.PathLike | None) -> Path | None:
    """chaos only logs a missing --var-file and goes on with defaults: refuse it here instead."""
    if not var_file:
        return None
    p = Path(var_file).expanduser().absolute()
    if not p.is_file():
        raise SchedulingError(f"var_file {p} does not exist or is not a file")
    return p


def run_drill(experiment: str | os.PathLike, *, inventory: str | os.PathLike | None = None,
              var_file: str | os.PathLike | None = None, overrides: Mapping[str, Any] | None = None,
              archive_dir: str | os.PathLike = DEFAULT_ARCHIVE_DIR,
              secret_values: Mapping[str, str] | None = None, timeout: float = DEFAULT_DRILL_TIMEOUT_SECONDS,
              log: Callable[[str], None] | None = None, base_env: Mapping[str, str] | None = None) -> DrillResult:
    """One drill: `chaos run` in a subprocess, then its journal evaluated. Never raises for a drill problem:
    everything that went wrong is in the result's reasons."""
    exp = resolve_experiment(experiment)
    label = str(experiment)
    secrets = list((secret_values or {}).values())
    try:
        if not exp.is_file():
            raise SchedulingError(f"experiment {exp} does not exist")
        vf = check_var_file(var_file)
        if inventory and not Path(inventory).expanduser().is_file():
            raise SchedulingError(f"inventory {Path(inventory).expanduser().absolute()} does not exist")
        env = drill_env(base_env if base_env is not None else os.environ, inventory=inventory,
                        archive_dir=archive_dir, secret_values=secret_values)
        with tempfile.TemporaryDirectory(prefix="drpoc-drill-") as tmp:
            journal_path = Path(tmp) / "journal.json"
            cmd = chaos_command(exp, journal_path, var_file=vf, overrides=overrides)
            code, tail, problem = run_chaos(cmd, env=env, timeout=timeout, log=log, secrets=secrets)
            journal = _read_json(journal_path)
        result = evaluate_drill(journal, code, experiment=label, problem=problem)
        result.output_tail = tail
        if result.archived_as:
            result.journal_path = result.archived_as
        return result
    except (SchedulingError, ValueError, OSError) as exc:
        return DrillResult(experiment=label, passed=False, status="error",
                           reasons=[redact_text(str(exc), secrets)])


def load_experiment(path: str | os.PathLike) -> dict[str, Any]:
    p = resolve_experiment(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SchedulingError(f"cannot read experiment {p}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise SchedulingError(f"experiment {p} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SchedulingError(f"experiment {p} is not a Chaos Toolkit experiment")
    return data


def run_steady_state(experiment: str | os.PathLike = DEFAULT_EXPERIMENT, *,
                     inventory: str | os.PathLike | None = None, var_file: str | os.PathLike | None = None,
                     overrides: Mapping[str, Any] | None = None, secret_values: Mapping[str, str] | None = None,
                     timeout: float = DEFAULT_CHECK_TIMEOUT_SECONDS, log: Callable[[str], None] | None = None,
                     base_env: Mapping[str, str] | None = None) -> SteadyStateResult:
    """Run only the experiment's steady-state hypothesis (no fault, no lock, no archive) with `chaos run`."""
    label = str(experiment)
    secrets = list((secret_values or {}).values())
    hypothesis = None
    try:
        exp = load_experiment(experiment)
        hypothesis = exp.get("steady-state-hypothesis")
        reduced = steady_state_experiment(exp)
        vf = check_var_file(var_file)
        if inventory and not Path(inventory).expanduser().is_file():
            raise SchedulingError(f"inventory {Path(inventory).expanduser().absolute()} does not exist")
        env = drill_env(base_env if base_env is not None else os.environ, inventory=inventory,
                        secret_values=secret_values)
        with tempfile.TemporaryDirectory(prefix="drpoc-check-") as tmp:
            exp_path = Path(tmp) / "steady-state.json"
            exp_path.write_text(json.dumps(reduced), encoding="utf-8")
            journal_path = Path(tmp) / "journal.json"
            cmd = chaos_command(exp_path, journal_path, var_file=vf, overrides=overrides,
                                run_options=["--hypothesis-strategy", "before-method-only",
                                             "--rollback-strategy", "never"])
            code, tail, problem = run_chaos(cmd, env=env, timeout=timeout, log=log, secrets=secrets, grace=30)
            journal = _read_json(journal_path)
        res = evaluate_steady_state(journal, code, experiment=label, hypothesis=hypothesis, problem=problem)
        res.output_tail = tail
        return res
    except (SchedulingError, ValueError, OSError) as exc:
        return SteadyStateResult(experiment=label, healthy=False, problems=[redact_text(str(exc), secrets)],
                                 checked_at=utc_now().isoformat().replace("+00:00", "Z"))


def drill_lock_hint(inventory: str | os.PathLike | None = None) -> str | None:
    """When a drill holds the lock on the fault-side gateway (a hand-run `chaos run`, say), a failed steady-state
    check is probably that drill's fault: say so. Best effort, bounded by the inventory's SSH timeouts."""
    try:
        inv = load_inventory(inventory)
        holder = safety.lock_holder(gateway.helper(inv, inv.drill.fault_site))
    except Exception:  # noqa: BLE001 — a hint only
        return None
    if holder:
        return (f"a drill holds the drill lock on the {inv.drill.fault_site} gateway (run "
                f"{str(holder.get('run_id', '?'))[:8]}, scenario {holder.get('scenario', '?')}): "
                "the failure may be that drill's fault")
    return None
