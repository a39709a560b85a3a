"""Prefect 3 flow `dr-campaign`: one scenario drilled across chosen pairs of a fleet inventory, a few at a time.

- Which pairs: `selection` — all, count:N, percent:P or an explicit list (drpoc_chaos.core.campaign; random picks
  use `seed`, recorded in the summary).
- Where each drill runs: on the work pool of its pair (the inventory's `work_pool` of the pair's fault site, else
  drpoc-pool), through that pool's `pair-drill-<pool>` deployment of the `dr-drill` flow, so a worker near each site
  runs its drills. The deployments are created from the inventory when missing.
- How many at once: at most `max_parallel`, never two on one gateway — the campaign starts only a pair whose
  gateway no running drill holds, and each drill flow holds its gateway's Prefect global concurrency limit
  (`drpoc-gateway-<inventory>-<gateway>`, limit 1), which also keeps schedules and other campaigns off it.
- When to stop: on the first drill that did not pass (`halt_on_failure`), or when the fleet-wide health probe (every
  pair not under drill: tunnel up, replica running and in step) fails before a launch (`health_check`). Drills
  already running finish; the pairs left are reported as "not run: campaign halted".
- What is kept: a campaign file in the archive (`<archive>/campaigns/…json`, read by `drpoc review`), a markdown
  artifact, and the flow ends Failed when any chosen pair did not pass.
"""
from __future__ import annotations

import time
import uuid
from typing import Any, Optional, Union

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import FlowRun
from prefect.context import get_run_context
from prefect.futures import PrefectConcurrentFuture

from drpoc_chaos import scheduling as sch
from drpoc_chaos.core import campaign as cp
from drpoc_chaos.core.clock import utc_now_iso
from drpoc_chaos.inventory import load_fleet
from drpoc_chaos.scheduling import campaign as sc


class CampaignNotPassed(Exception):
    """At least one chosen pair did not pass (or was not run because the campaign halted)."""


@task(name="pair-drill", retries=0, cache_policy=NO_CACHE, persist_result=False, task_run_name="drill {pair}")
def pair_drill(pair: str, deployment: str, parameters: dict[str, Any], timeout_seconds: float) -> dict[str, Any]:
    """Run the pair's drill on its pool's deployment and wait for it (a subflow of the campaign)."""
    from prefect.deployments import run_deployment

    started = utc_now_iso()
    fr = run_deployment(name=deployment, parameters=parameters, timeout=timeout_seconds,
                        tags=["drpoc", "campaign", f"pair:{pair}"])
    if not isinstance(fr, FlowRun):  # a coroutine only when called from async code; this task is sync
        raise TypeError("run_deployment returned a coroutine in a sync task")
    state = fr.state
    rows = sc.read_pair_outcome(fr.id) if state is not None and state.is_final() else []
    return {"flow_run_id": str(fr.id), "state": state.type.value if state else None,
            "message": (state.message or "") if state else "", "rows": rows, "started": started,
            "finished": utc_now_iso()}


def _outcome(o: cp.Outcome, data: dict[str, Any]) -> cp.Outcome:
    o.flow_run_id, o.started, o.finished = data.get("flow_run_id"), data.get("started"), data.get("finished")
    rows = data.get("rows") or []
    if rows:
        o.run_id = rows[-1].get("run_id")
        o.journal = rows[-1].get("archived_as")
        passed = all(r.get("passed") for r in rows)
        o.state = "passed" if passed and data.get("state") == "COMPLETED" else "failed"
        o.reasons = [r["reasons"] for r in rows if r.get("reasons")]
    else:
        o.state = "error"
        o.reasons = [f"the drill's flow run ended {data.get('state')}: {data.get('message') or 'no outcome'}"[:500]]
    return o


@flow(name="dr-campaign", retries=0, log_prints=False)
def dr_campaign(scenario: str = sch.DEFAULT_EXPERIMENT,
                inventory: Optional[str] = None,
                selection: Union[str, list[str]] = "all",
                max_parallel: int = 1,
                halt_on_failure: bool = True,
                health_check: bool = True,
                seed: Optional[int] = None,
                objectives: Optional[dict[str, Any]] = None,
                archive_dir: str = sch.DEFAULT_ARCHIVE_DIR,
                drill_timeout_seconds: float = sch.DEFAULT_DRILL_TIMEOUT_SECONDS + 300,
                poll_seconds: float = 1.0):
    """Drill `scenario` on the pairs of `inventory` chosen by `selection` (all | count:N | percent:P | list:a,b or
    a list of names), at most `max_parallel` at once and never two on one gateway; halt on the first failed drill
    (`halt_on_failure`) or when the fleet-wide health probe fails before a launch (`health_check`)."""
    logger = get_run_logger()
    k = sc.check_max_parallel(max_parallel)
    fleet = load_fleet(inventory)
    pairs = list(fleet.pairs)
    campaign_id = uuid.uuid4().hex
    seed = int(seed) if seed is not None else int(campaign_id[:8], 16)
    chosen = cp.choose(selection, pairs, seed)
    pools = {p: sc.pair_pool(fleet, p) for p in chosen}
    deployments = sc.ensure_pair_deployments(sorted(set(pools.values())))
    gateways = {p: sc.campaign_gateways(fleet, p) for p in chosen}
    ctx = get_run_context()
    current = getattr(ctx, "flow_run", None)
    flow_run_id = str(current.id) if current is not None else None
    started = utc_now_iso()
    logger.info("campaign %s: %s on %s (selection %s, seed %d), at most %d at once", campaign_id[:8], scenario,
                ", ".join(chosen), selection, seed, k)

    outcomes = {p: cp.Outcome(pair=p, order=i + 1, work_pool=pools[p]) for i, p in enumerate(chosen)}
    queue = list(chosen)
    running: dict[str, PrefectConcurrentFuture] = {}  # the flow's default task runner is a thread pool
    halt: Optional[str] = None
    params_base = {"experiments": [scenario], "inventory": str(fleet.path), "archive_dir": archive_dir,
                   "objectives": dict(objectives or {}), "max_lateness_seconds": None}
    deadline = time.monotonic() + drill_timeout_seconds * max(1, len(chosen))
    while (queue and halt is None) or running:
        if time.monotonic() > deadline:  # bounded: every drill has its own timeout; this is the campaign's
            halt = halt or "the campaign ran past its time bound"
            break
        # collect finished drills
        for pair, fut in list(running.items()):
            # the task's own thread says when it is done: `fut.state` would ask the API, which only knows once the
            # task's state events have been recorded (seen lagging forever when this process's events went to
            # another server)
            if fut.wrapped_future.done():
                del running[pair]
                try:
                    _outcome(outcomes[pair], fut.result())
                except Exception as exc:  # noqa: BLE001 — a task that raised is an error outcome
                    outcomes[pair].state, outcomes[pair].reasons = "error", [f"{type(exc).__name__}: {exc}"[:500]]
                logger.info("pair %s: %s", pair, outcomes[pair].state)
                halt = halt or cp.halt_reason(outcomes[pair], halt_on_failure)
        # start what may start
        while queue and halt is None:
            nxt = cp.next_to_start(queue, running, gateways, k)
            if nxt is None:
                break
            if health_check:
                elsewhere: dict[str, str] = {}
                sick = sc.fleet_health(fleet, [p for p in pairs if p not in running], under_drill=elsewhere)
                for p, run in elsewhere.items():
                    logger.warning("pair %s is under a drill started outside this campaign (run %s): not counted "
                                   "as a health failure", p, run)
                if sick:
                    halt = "fleet health probe failed before starting " + nxt + ": " + "; ".join(
                        f"{p}: {', '.join(v)}" for p, v in sick.items())[:800]
                    break
            queue.remove(nxt)
            outcomes[nxt].started = utc_now_iso()
            submitted = pair_drill.submit(nxt, deployments[pools[nxt]], {**params_base, "pair": nxt},
                                          drill_timeout_seconds)
            if not isinstance(submitted, PrefectConcurrentFuture):
                raise TypeError(f"dr-campaign needs a thread-pool task runner, got {type(submitted).__name__}")
            running[nxt] = submitted
            logger.info("pair %s: started on pool %s", nxt, pools[nxt])
        if running:
            time.sleep(poll_seconds)
    if halt:
        logger.error("campaign halted: %s", halt)
    record = cp.summary(campaign_id=campaign_id, flow_run_id=flow_run_id, scenario=scenario, inventory=fleet.name,
                        selection=selection, seed=seed, max_parallel=k, started=started, finished=utc_now_iso(),
                        chosen=chosen, outcomes=list(outcomes.values()), halt=halt)
    path = sc.write_campaign(archive_dir, record)
    create_markdown_artifact(key="drpoc-campaign", markdown=_markdown(record, str(path)),
                             description=f"campaign {campaign_id[:8]}: {record['passed']}/{len(chosen)} passed"
                             + (" (halted)" if halt else ""))
    if record["not_passed"]:
        raise CampaignNotPassed(f"{len(record['not_passed'])} of {len(chosen)} pair(s) did not pass: "
                                + "; ".join(f"{o.pair} {o.state}" for o in outcomes.values() if o.state != "passed")
                                + (f" — halted: {halt}" if halt else ""))
    return {**record, "file": str(path)}


def _markdown(record: dict[str, Any], path: str) -> str:
    lines = [f"# DR campaign {'HALTED' if record['halted'] else 'done'}: {record['scenario']}", "",
             f"selection `{record['selection']}` (seed {record['seed']}), at most {record['max_parallel']} at once; "
             f"{record['passed']}/{len(record['chosen'])} passed", ""]
    if record["halt_reason"]:
        lines += [f"**halted:** {record['halt_reason']}", ""]
    lines += ["| # | pair | outcome | pool | run id |", "|---|---|---|---|---|"]
    for o in record["outcomes"]:
        lines.append(f"| {o['order']} | {o['pair']} | {o['state']} | {o['work_pool']} | `{o['run_id'] or 'n/a'}` |")
    lines += ["", f"campaign file: `{path}`"]
    return "\n".join(lines)
