"""Alerting with Prefect's own machinery: the automations of `flows/automations.yaml`, expanded for the deployments
and work pools of `flows/prefect.yaml`, and applied idempotently to a Prefect API (`apply_alerts`).

- a `dr-drill` / `steady-state-check` flow run that ends Failed, Crashed or TimedOut (a Reactive event trigger);
- no Completed run of a scheduled deployment within its expected interval plus grace (a Proactive event trigger
  keyed by the deployment's id; the window is `absence_window`: the longest gap between two fire times of its
  schedules, computed by Prefect's own schedule model, plus grace);
- the work pool NOT_READY (`prefect.work-pool.not-ready`: no worker polls it).

Each notifies through one Prefect notification block picked by the user (`drpoc-alerts` by default). When that block
does not exist nothing is applied and the result says how to create it. Prefect is imported only inside functions.
"""
from __future__ import annotations

import asyncio
import copy
import os
import re
import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlsplit

import yaml

from .deployments import DeploymentSpec, load_deployment_specs
from .settings import SchedulingError, project_root, utc_now

DEFAULT_ALERTS_BLOCK = "drpoc-alerts"
ALERT_NAME_PREFIX = "drpoc: "            # name_prefix of the shipped file: `drpoc schedule status` lists these
DEFAULT_GRACE_SECONDS = 6 * 3600
MIN_PROACTIVE_WITHIN_SECONDS = 10          # Prefect refuses a Proactive trigger with a shorter window
_EXPANSIONS = (None, "scheduled_deployment", "work_pool")


# ==============================================================================================================
# the absence window, from a deployment's schedules (pure apart from Prefect's schedule model)


def _server_schedule(s: Mapping[str, Any]):
    """A Prefect server-side schedule model (cron, interval or rrule) from a schedule mapping."""
    from prefect.server.schemas import schedules as ss
    if s.get("cron"):
        return ss.CronSchedule(cron=s["cron"], timezone=s.get("timezone") or "UTC", day_or=s.get("day_or", True))
    if s.get("interval") is not None:
        interval = s["interval"]
        kw = {k: s[k] for k in ("anchor_date", "timezone") if s.get(k)}
        return ss.IntervalSchedule(interval=interval if isinstance(interval, timedelta)
                                   else timedelta(seconds=float(interval)), **kw)
    if s.get("rrule"):
        kw = {"timezone": s["timezone"]} if s.get("timezone") else {}
        return ss.RRuleSchedule(rrule=s["rrule"], **kw)
    raise ValueError(f"not a cron, interval or rrule schedule: {dict(s)!r}")


def _fire_times(schedules: Sequence[Mapping[str, Any]], start: datetime, end: datetime, n: int) -> list[datetime]:
    async def dates() -> list[datetime]:
        out: list[datetime] = []
        for s in schedules:
            out.extend(await _server_schedule(s).get_dates(n=n, start=start, end=end))
        return out
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        times = asyncio.run(dates())
    else:                                  # called from async code: compute in a thread of its own
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(1) as pool:
            times = pool.submit(asyncio.run, dates()).result()
    return sorted(set(times))


def schedule_gap(schedules: Sequence[Mapping[str, Any]], *, after: datetime | None = None,
                 horizon: timedelta = timedelta(days=400), max_fire_times: int = 2000) -> timedelta | None:
    """The longest time between two consecutive fire times of the active `schedules` (together) over `horizon`
    from `after`: a weekly cron gives 7 days, "first Sunday of the month" 35 days. None when nothing fires twice."""
    active = [s for s in schedules if s.get("active", True)]
    if not active:
        return None
    start = after or utc_now()
    times = _fire_times(active, start, start + horizon, max_fire_times)
    if len(times) < 2:
        return None
    return max(b - a for a, b in pairwise(times))


def absence_window(schedules: Sequence[Mapping[str, Any]], grace: timedelta | float = DEFAULT_GRACE_SECONDS, *,
                   after: datetime | None = None) -> timedelta | None:
    """`within` of the absence trigger: the longest gap between two fire times plus `grace` (never under
    Prefect's 10 s minimum for a Proactive trigger). None for a deployment with no recurring schedule."""
    gap = schedule_gap(schedules, after=after)
    if gap is None:
        return None
    grace_td = grace if isinstance(grace, timedelta) else timedelta(seconds=float(grace))
    return max(gap + grace_td, timedelta(seconds=MIN_PROACTIVE_WITHIN_SECONDS))


def human_duration(td: timedelta) -> str:
    """'7 d 6 h', '1 d', '45 min', '10 s'."""
    total = int(round(td.total_seconds()))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if total >= size:
            parts.append(f"{total // size} {unit}")
            total %= size
    return " ".join(parts) or "0 s"


def schedule_text(schedules: Sequence[Mapping[str, Any]]) -> str:
    out = []
    for s in schedules:
        if not s.get("active", True):
            continue
        if s.get("cron"):
            out.append(f"cron {s['cron']} {s.get('timezone') or 'UTC'}"
                       + ("" if s.get("day_or", True) else " (day AND weekday)"))
        elif s.get("interval") is not None:
            iv = s["interval"]
            out.append("every " + human_duration(iv if isinstance(iv, timedelta) else timedelta(seconds=float(iv))))
        elif s.get("rrule"):
            out.append(f"rrule {s['rrule']}")
    return "; ".join(out) or "no active schedule"


# ==============================================================================================================
# flows/automations.yaml, expanded (pure: ids are given)


@dataclass
class DeploymentTarget:
    """A deployment of flows/prefect.yaml as found on the server."""
    flow_name: str
    name: str
    id: str
    schedules: list[dict[str, Any]] = field(default_factory=list)
    paused: bool = False

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"


def automations_file(root: Path | None = None) -> Path:
    """The project's flows/automations.yaml."""
    return project_root(root) / "flows" / "automations.yaml"


def load_alerts_config(path: str | os.PathLike | None = None) -> dict[str, Any]:
    p = Path(path) if path is not None else automations_file()
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise SchedulingError(f"cannot read {p}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise SchedulingError(f"{p} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("automations"), list) or not data["automations"]:
        raise SchedulingError(f"{p}: expected a mapping with a non-empty `automations` list")
    prefix = data.get("name_prefix") or ""
    for i, a in enumerate(data["automations"]):
        where = f"{p}: automations[{i}]"
        if not isinstance(a, dict) or not a.get("name") or not isinstance(a.get("trigger"), dict):
            raise SchedulingError(f"{where}: `name` and a `trigger` mapping are required")
        if prefix and not str(a["name"]).startswith(prefix):
            raise SchedulingError(f"{where}: the name {a['name']!r} must start with name_prefix {prefix!r} "
                                  f"(that is how drpoc knows which automations it manages)")
        if a.get("expand") not in _EXPANSIONS:
            raise SchedulingError(f"{where}: expand must be one of scheduled_deployment, work_pool")
        notify = a.get("notify") or {}
        if not notify.get("body"):
            raise SchedulingError(f"{where}: `notify.body` is required")
    data.setdefault("notify", {})
    data["name_prefix"] = prefix
    return data


def _substitute(obj: Any, values: Mapping[str, str]) -> Any:
    """${name} placeholders replaced in every string (Jinja's {{ }} untouched); an unknown one is an error."""
    if isinstance(obj, str):
        try:
            return string.Template(obj).substitute(values)
        except KeyError as exc:
            raise SchedulingError(f"unknown placeholder ${{{exc.args[0]}}} in {obj!r}") from None
        except ValueError as exc:
            raise SchedulingError(f"bad placeholder in {obj!r}: {exc}") from None
    if isinstance(obj, list):
        return [_substitute(v, values) for v in obj]
    if isinstance(obj, dict):
        return {k: _substitute(v, values) for k, v in obj.items()}
    return obj


def expand_alerts(config: Mapping[str, Any], deployments: Sequence[DeploymentTarget], work_pools: Sequence[str],
                  *, after: datetime | None = None) -> list[dict[str, Any]]:
    """The automations of `config` as plain dicts (name, description, enabled, trigger, subject, body): one per
    entry, one per work pool for `expand: work_pool`, one per scheduled deployment (of the listed `flows`) for
    `expand: scheduled_deployment`, with its absence window. Names must come out unique."""
    out: list[dict[str, Any]] = []
    for a in config["automations"]:
        kind = a.get("expand")
        contexts: list[dict[str, str]]
        if kind == "work_pool":
            contexts = [{"work_pool": p} for p in sorted(set(work_pools))]
        elif kind == "scheduled_deployment":
            flows = set(a.get("flows") or [])
            grace = timedelta(seconds=float(a.get("grace_seconds", DEFAULT_GRACE_SECONDS)))
            contexts = []
            for d in deployments:
                if (flows and d.flow_name not in flows) or d.paused:
                    continue
                gap = schedule_gap(d.schedules, after=after)
                window = absence_window(d.schedules, grace, after=after)
                if gap is None or window is None:
                    continue
                contexts.append({"deployment": d.full_name, "deployment_id": d.id, "flow": d.flow_name,
                                 "schedule": schedule_text(d.schedules), "interval": human_duration(gap),
                                 "grace": human_duration(grace), "window": human_duration(window),
                                 "window_seconds": str(int(window.total_seconds()))})
        else:
            contexts = [{}]
        for ctx in contexts:
            values = {"work_pool": ",".join(sorted(set(work_pools))), **ctx}
            notify = a.get("notify") or {}
            body = {"name": a["name"], "description": a.get("description") or "", "enabled": a.get("enabled", True),
                    "trigger": copy.deepcopy(a["trigger"]), "subject": notify.get("subject") or a["name"],
                    "body": notify["body"]}
            item = _substitute(body, values)
            within = item["trigger"].get("within")
            if isinstance(within, str) and re.fullmatch(r"\d+(\.\d+)?", within.strip()):
                item["trigger"]["within"] = float(within)
            out.append(item)
    names = [a["name"] for a in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SchedulingError(f"automation names must be unique after expansion: {dupes}")
    return out


def build_automations(items: Sequence[Mapping[str, Any]], block_document_id) -> list:
    """Prefect `AutomationCore` models of the expanded items, each notifying through the block."""
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import AutomationCore, EventTrigger

    out = []
    for it in items:
        try:
            trigger = EventTrigger.model_validate(it["trigger"])
            out.append(AutomationCore(
                name=it["name"], description=it["description"], enabled=bool(it["enabled"]), trigger=trigger,
                actions=[SendNotification(block_document_id=block_document_id, subject=it["subject"],
                                          body=it["body"])]))
        except Exception as exc:  # noqa: BLE001 — pydantic's message, named by automation
            raise SchedulingError(f"automation {it['name']!r} is not valid: {exc}") from None
    return out


# ==============================================================================================================
# the Prefect API: the notification block, the deployments, the automations


def find_notification_block(client, ref: str):
    """The block document named `ref` (NAME, or TYPE-SLUG/NAME) that can notify; None when there is none.
    Several blocks of that name and different types: an error asking for TYPE-SLUG/NAME."""
    type_slug, _, name = ref.rpartition("/")
    docs = [d for d in client.read_block_documents(include_secrets=False)
            if d.name == name and not d.is_anonymous
            and (not type_slug or (d.block_type and d.block_type.slug == type_slug))]
    notify = [d for d in docs if d.block_schema and "notify" in (d.block_schema.capabilities or [])]
    if not notify:
        if docs:
            kinds = ", ".join(sorted({d.block_type.slug for d in docs if d.block_type}))
            raise SchedulingError(f"the block {ref!r} ({kinds}) cannot send notifications: use a notification "
                                  f"block (Custom Webhook, Slack Webhook, Microsoft Teams, Email, …)")
        return None
    if len(notify) > 1:
        kinds = ", ".join(sorted(f"{d.block_type.slug}/{d.name}" for d in notify if d.block_type))
        raise SchedulingError(f"several notification blocks are named {name!r} ({kinds}): give one as TYPE/NAME")
    return notify[0]


def block_help(ref: str, api_url: str | None = None) -> str:
    """How to create the notification block the automations reference."""
    name = ref.rpartition("/")[2]
    return (f"no Prefect notification block named {ref!r}{f' on {api_url}' if api_url else ''}: the alerts "
            f"(flows/automations.yaml) were NOT applied. Create the block, then run `drpoc schedule alerts` "
            f"(or `drpoc schedule up` again):\n"
            f"  drpoc schedule alerts --webhook-url https://hooks.example.com/drpoc   # a Custom Webhook block "
            f"named {name!r}, JSON {{subject, body, text}}\n"
            f"  or in Python: from prefect.blocks.notifications import SlackWebhook; "
            f"SlackWebhook(url='https://hooks.slack.com/services/…').save({name!r})\n"
            f"  (or EmailServerCredentials + prefect-email, MicrosoftTeamsWebhook, … — any block that can notify; "
            f"or in the UI: Blocks > +, named {name!r})")


def ensure_webhook_block(name: str, url: str, *, headers: Mapping[str, str] | None = None):
    """Create or update a Custom Webhook notification block `name` that POSTs JSON
    {"subject", "body", "text"} to `url`. Returns its block document id."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    block = CustomWebhookNotificationBlock(
        name=name, url=url, method="POST", headers=dict(headers) if headers else None,
        cookies=None,  # its default, spelt out: Prefect declares it Field(None), which mypy does not read as one
        json_data={"subject": "{{subject}}", "body": "{{body}}", "text": "{{subject}}\n{{body}}"})
    return block.save(name, overwrite=True)


def resolve_deployments(client, specs: Sequence[DeploymentSpec]) -> list[DeploymentTarget]:
    """The deployments of flows/prefect.yaml on the server (matched by name and entrypoint); schedules and
    `paused` come from the file — the intent — so pausing one by hand does not silence its absence alert."""
    flows: dict[Any, str] = {}
    found = client.read_deployments()
    out: list[DeploymentTarget] = []
    missing = []
    for spec in specs:
        match = [d for d in found if d.name == spec.name and d.entrypoint == spec.entrypoint]
        if not match:
            missing.append(spec.name)
            continue
        d = match[0]
        if d.flow_id not in flows:
            flows[d.flow_id] = client.read_flow(d.flow_id).name
        out.append(DeploymentTarget(flow_name=flows[d.flow_id], name=spec.name, id=str(d.id),
                                    schedules=[dict(s) for s in spec.schedules], paused=spec.paused))
    if missing:
        raise SchedulingError(f"deployment(s) {', '.join(missing)} of flows/prefect.yaml are not on the server: "
                              f"apply them first (`drpoc schedule up`, or `python flows/deploy.py`)")
    return out


_COMPARED = ("name", "description", "enabled", "trigger", "actions", "actions_on_trigger", "actions_on_resolve")


def _comparable(automation) -> dict[str, Any]:
    from prefect.events.schemas.automations import AutomationCore
    core = AutomationCore.model_validate(automation.model_dump(include=set(_COMPARED) | {"tags"}))
    return core.model_dump(mode="python", include=set(_COMPARED))


def apply_automations(client, desired: Sequence[Any], *, prefix: str, dry_run: bool = False) -> list[tuple[str, str]]:
    """Make the server's automations named `prefix…` exactly `desired` (keyed by name): create the missing ones,
    update the ones that differ, leave equal ones untouched, delete duplicates and the stale ones. Returns
    [(created|updated|unchanged|deleted, name)]."""
    existing = client.read_automations()
    by_name: dict[str, list] = {}
    for a in existing:
        by_name.setdefault(a.name, []).append(a)
    changes: list[tuple[str, str]] = []
    wanted = {a.name for a in desired}
    for auto in desired:
        have = by_name.get(auto.name, [])
        if not have:
            if not dry_run:
                client.create_automation(auto)
            changes.append(("created", auto.name))
            continue
        keep, extra = have[0], have[1:]
        if _comparable(keep) != _comparable(auto):
            if not dry_run:
                client.update_automation(keep.id, auto)
            changes.append(("updated", auto.name))
        else:
            changes.append(("unchanged", auto.name))
        for dup in extra:
            if not dry_run:
                client.delete_automation(dup.id)
            changes.append(("deleted", f"{dup.name} (duplicate {dup.id})"))
    if prefix:
        for name, autos in sorted(by_name.items()):
            if name.startswith(prefix) and name not in wanted:
                for a in autos:
                    if not dry_run:
                        client.delete_automation(a.id)
                    changes.append(("deleted", f"{name} (no longer in flows/automations.yaml)"))
    return changes


def apply_alerts(*, automations_file: str | os.PathLike | None = None,
                 prefect_file: str | os.PathLike | None = None, block: str | None = None,
                 webhook_url: str | None = None, dry_run: bool = False, api_url: str | None = None,
                 client=None, out: Callable[[str], None] = print) -> dict[str, Any]:
    """Apply flows/automations.yaml to the Prefect API (`api_url`, else PREFECT_API_URL / the profile's).

    Returns {"status": "applied"|"dry-run"|"skipped", "block": ref, "changes": [(what, name)], "message"}.
    "skipped" when the notification block does not exist (the message says how to create it): never an error,
    so a scheduler without alerting configured still starts."""
    config = load_alerts_config(automations_file)
    specs = load_deployment_specs(prefect_file)
    ref = block or (config.get("notify") or {}).get("block") or DEFAULT_ALERTS_BLOCK

    if client is None:
        from contextlib import ExitStack

        from prefect import get_client
        with ExitStack() as stack:
            if api_url:
                import prefect.settings as ps
                stack.enter_context(ps.temporary_settings(updates={ps.PREFECT_API_URL: api_url}))
            client = stack.enter_context(get_client(sync_client=True))
            return apply_alerts(automations_file=automations_file, prefect_file=prefect_file, block=ref,
                                webhook_url=webhook_url, dry_run=dry_run, api_url=api_url, client=client, out=out)

    where = api_url or str(getattr(client, "api_url", "") or "")
    if webhook_url:
        if "/" in ref:
            raise SchedulingError(f"--webhook-url creates a Custom Webhook block: give its NAME, not {ref!r}")
        if not dry_run:
            ensure_webhook_block(ref, webhook_url)
            u = urlsplit(webhook_url)                # the path of a Slack-style URL is its secret: not printed
            out(f"notification block {ref!r} (Custom Webhook) now posts to {u.scheme}://{u.netloc}/…")
    doc = find_notification_block(client, ref)
    if doc is None:
        msg = block_help(ref, where or None)
        out(msg)
        return {"status": "skipped", "block": ref, "changes": [], "message": msg}
    deployments = resolve_deployments(client, specs)
    pools = sorted({s.work_pool for s in specs})
    desired = build_automations(expand_alerts(config, deployments, pools), doc.id)
    changes = apply_automations(client, desired, prefix=config["name_prefix"], dry_run=dry_run)
    kind = doc.block_type.slug if doc.block_type else "block"
    out(f"alerts{' (dry run)' if dry_run else ''}: {len(desired)} automation(s) notifying through {kind}/{doc.name}")
    for what, name in changes:
        out(f"  {'would be ' + what if dry_run and what != 'unchanged' else what:<10} {name}")
    return {"status": "dry-run" if dry_run else "applied", "block": f"{kind}/{doc.name}", "changes": changes,
            "message": ""}
