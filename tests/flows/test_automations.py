"""Alerting (flows/automations.yaml applied as Prefect automations) and the ledger head anchored in Prefect Variables.

The window arithmetic and the file's expansion are unit tests; the rest runs on the real local Prefect server of
`prefect_test_harness` (events, triggers and actions services included): a failing `dr-drill` flow run fires the
automation and the notification block's webhook reaches an HTTP receiver of the test on 127.0.0.1; a Proactive
trigger with a 10 s window fires when no run completes. No lab: the drill fails on an inventory that does not exist.
Every wait is bounded."""
from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from drpoc_chaos import scheduling as sch
from drpoc_chaos.scheduling import alerts as al
from drpoc_chaos.scheduling import heads as hd

pytestmark = pytest.mark.flows
REPO = Path(__file__).resolve().parents[2]
MONDAY = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
GRACE = timedelta(hours=6)


# ---------------------------------------------------------------------------------------------- window arithmetic

@pytest.mark.parametrize("schedules, gap", [
    ([{"cron": "0 3 * * 1"}], timedelta(days=7)),                                    # weekly
    ([{"cron": "0 6 * * *", "timezone": "UTC"}], timedelta(days=1)),                 # daily
    ([{"cron": "0 4 1-7 * 0", "day_or": False}], timedelta(days=35)),                # first Sunday: 4 or 5 weeks
    ([{"cron": "0 3 * * 1"}, {"cron": "0 3 * * 4"}], timedelta(days=4)),             # Mon + Thu: longest is Thu→Mon
    ([{"cron": "0 3 * * 1"}, {"cron": "0 3 * * 4", "active": False}], timedelta(days=7)),   # inactive ignored
    ([{"interval": 5400}], timedelta(minutes=90)),
])
def test_schedule_gap_is_the_longest_time_between_two_fire_times(schedules, gap):
    assert sch.schedule_gap(schedules, after=MONDAY) == gap
    assert sch.absence_window(schedules, GRACE, after=MONDAY) == gap + GRACE


def test_no_recurring_schedule_no_window_and_prefects_10_s_minimum():
    assert sch.schedule_gap([], after=MONDAY) is None
    assert sch.absence_window([{"cron": "0 3 * * 1", "active": False}], GRACE) is None
    assert sch.absence_window([{"interval": 2}], 1, after=MONDAY) == timedelta(seconds=10)


def test_local_time_zone_with_daylight_saving_counts_the_long_week():
    # 03:30 Paris every Monday: the week that leaves summer time is one hour longer
    gap = sch.schedule_gap([{"cron": "30 3 * * 1", "timezone": "Europe/Paris"}], after=MONDAY)
    assert gap == timedelta(days=7, hours=1)


def _targets(ids=None) -> list[al.DeploymentTarget]:
    flows = {"flows/drills.py:dr_drill": "dr-drill", "flows/drills.py:steady_state_check": "steady-state-check"}
    return [al.DeploymentTarget(flow_name=flows[s.entrypoint], name=s.name,
                                id=(ids or {}).get(s.name, str(uuid.uuid4())), schedules=s.schedules,
                                paused=s.paused)
            for s in sch.load_deployment_specs(REPO / "flows" / "prefect.yaml")]


def test_the_shipped_file_expands_to_one_absence_alert_per_scheduled_deployment():
    deps = _targets()
    items = al.expand_alerts(sch.load_alerts_config(), deps, ["drpoc-pool"], after=MONDAY)
    by_name = {i["name"]: i for i in items}
    assert set(by_name) == {
        "drpoc: drill or check failed", "drpoc: work pool drpoc-pool not ready",
        "drpoc: no completed run of dr-drill/weekly-drill",
        "drpoc: no completed run of steady-state-check/daily-steady-state",
        "drpoc: no completed run of dr-drill/monthly-drill-under-load"}
    windows = {"weekly-drill": timedelta(days=7), "daily-steady-state": timedelta(days=1),
               "monthly-drill-under-load": timedelta(days=35)}
    for d in deps:
        t = by_name[f"drpoc: no completed run of {d.full_name}"]["trigger"]
        assert t["posture"] == "Proactive" and t["expect"] == ["prefect.flow-run.Completed"]
        assert t["within"] == (windows[d.name] + GRACE).total_seconds()
        assert t["match_related"] == {"prefect.resource.role": "deployment",
                                      "prefect.resource.id": f"prefect.deployment.{d.id}"}
    failed = by_name["drpoc: drill or check failed"]["trigger"]
    assert set(failed["expect"]) == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed",
                                     "prefect.flow-run.TimedOut"}
    assert failed["match_related"]["prefect.resource.name"] == ["dr-drill", "steady-state-check"]
    pool = by_name["drpoc: work pool drpoc-pool not ready"]
    assert pool["trigger"]["expect"] == ["prefect.work-pool.not-ready"]
    assert pool["trigger"]["match"]["prefect.resource.name"] == "drpoc-pool"
    assert "{{ flow_run.name }}" in by_name["drpoc: drill or check failed"]["body"]   # Jinja left to Prefect

    # Prefect's own models accept them
    autos = al.build_automations(items, uuid.uuid4())
    weekly = next(a for a in autos if a.name.endswith("weekly-drill"))
    assert weekly.trigger.within == timedelta(days=7, hours=6)
    assert weekly.actions[0].type == "send-notification"

    # a paused deployment, or one of a flow not listed, gets no absence alert
    deps[0].paused = True
    names = {i["name"] for i in al.expand_alerts(sch.load_alerts_config(), deps, ["drpoc-pool"], after=MONDAY)}
    assert f"drpoc: no completed run of {deps[0].full_name}" not in names and len(names) == 4


def test_bad_automation_files_are_refused(tmp_path):
    good = yaml.safe_load((REPO / "flows" / "automations.yaml").read_text())
    cases = {
        "prefix": lambda d: d["automations"][0].update(name="not managed"),
        "placeholder": lambda d: d["automations"][0].update(description="${nope}"),
        "expand": lambda d: d["automations"][0].update(expand="everything"),
        "body": lambda d: d["automations"][0].pop("notify"),
    }
    for what, change in cases.items():
        data = json.loads(json.dumps(good))
        change(data)
        f = tmp_path / f"{what}.yaml"
        f.write_text(yaml.safe_dump(data))
        with pytest.raises(sch.SchedulingError):
            al.expand_alerts(sch.load_alerts_config(f), _targets(), ["drpoc-pool"], after=MONDAY)


# ---------------------------------------------------------------------------------------------- a webhook receiver

class Receiver:
    """An HTTP server on 127.0.0.1 (random port) recording every request body."""

    def __init__(self):
        self.got: queue.Queue = queue.Queue()
        got = self.got

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                got.put((self.path, body.decode("utf-8", "replace")))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, predicate, timeout: float) -> list[dict]:
        """Bodies (JSON) received until one satisfies `predicate`, or until `timeout` (then AssertionError)."""
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                _, body = self.got.get(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
            except queue.Empty:
                continue
            msg = json.loads(body)
            seen.append(msg)
            if predicate(msg):
                return seen
        raise AssertionError(f"no matching webhook within {timeout:g} s; received: {seen}")

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def deployed(prefect_client):
    """flows/prefect.yaml applied to the harness (as `drpoc schedule up` does)."""
    return sch.apply_deployments(sch.load_deployment_specs(REPO / "flows" / "prefect.yaml"), repo=REPO)


def _drpoc_automations(client) -> dict[str, list]:
    out: dict[str, list] = {}
    for a in client.read_automations():
        if a.name.startswith("drpoc: "):
            out.setdefault(a.name, []).append(a)
    return out


def _delete_drpoc_automations(client) -> None:
    for autos in _drpoc_automations(client).values():
        for a in autos:
            client.delete_automation(a.id)


# ---------------------------------------------------------------------------------------------- applying

def test_no_block_skips_the_alerts_and_says_how_to_create_one(prefect_client, deployed):
    _delete_drpoc_automations(prefect_client)
    msgs: list[str] = []
    res = sch.apply_alerts(block=f"no-such-block-{uuid.uuid4().hex[:6]}", out=msgs.append)
    assert res["status"] == "skipped" and res["changes"] == []
    assert "NOT applied" in res["message"] and "--webhook-url" in res["message"] and "SlackWebhook" in res["message"]
    assert msgs == [res["message"]]
    assert _drpoc_automations(prefect_client) == {}


def test_applying_twice_leaves_one_of_each_and_updates_in_place(prefect_client, deployed, receiver, tmp_path):
    _delete_drpoc_automations(prefect_client)
    block = f"drpoc-alerts-{uuid.uuid4().hex[:6]}"
    try:
        first = sch.apply_alerts(block=block, webhook_url=receiver.url, out=lambda m: None)
        assert first["status"] == "applied" and first["block"] == f"custom-webhook/{block}"
        assert [w for w, _ in first["changes"]] == ["created"] * 5
        autos = _drpoc_automations(prefect_client)
        assert len(autos) == 5 and all(len(v) == 1 for v in autos.values())
        ids = {n: v[0].id for n, v in autos.items()}
        weekly = autos["drpoc: no completed run of dr-drill/weekly-drill"][0]
        assert weekly.trigger.posture.value == "Proactive" and weekly.trigger.within == timedelta(days=7, hours=6)
        assert weekly.trigger.match_related.model_dump() == {
            "prefect.resource.role": "deployment",
            "prefect.resource.id": f"prefect.deployment.{deployed['dr-drill/weekly-drill']}"}
        assert str(weekly.actions[0].block_document_id) == str(al.find_notification_block(prefect_client, block).id)

        # again: nothing changes (an absence window is not restarted), still one of each, same ids
        again = sch.apply_alerts(block=block, out=lambda m: None)
        assert [w for w, _ in again["changes"]] == ["unchanged"] * 5
        autos = _drpoc_automations(prefect_client)
        assert {n: v[0].id for n, v in autos.items()} == ids and all(len(v) == 1 for v in autos.values())

        # a changed file updates in place; a duplicate made by hand is removed; a dropped entry is deleted
        data = yaml.safe_load((REPO / "flows" / "automations.yaml").read_text())
        data["automations"][1]["grace_seconds"] = 3600
        del data["automations"][2]                                       # the work-pool alert
        changed = tmp_path / "automations.yaml"
        changed.write_text(yaml.safe_dump(data))
        prefect_client.create_automation(al.build_automations(
            [{"name": "drpoc: drill or check failed", "description": "", "enabled": True,
              "trigger": {"type": "event", "expect": ["x.y"]}, "subject": "s", "body": "b"}],
            uuid.uuid4())[0])
        assert len(_drpoc_automations(prefect_client)["drpoc: drill or check failed"]) == 2
        dry = sch.apply_alerts(automations_file=changed, block=block, dry_run=True, out=lambda m: None)
        assert dry["status"] == "dry-run" and len(_drpoc_automations(prefect_client)) == 5
        res = sch.apply_alerts(automations_file=changed, block=block, out=lambda m: None)
        what = Counter(w for w, _ in res["changes"])      # the duplicate kept is either one of the two
        assert what["deleted"] == 2 and what["updated"] >= 3 and sum(what.values()) == 6, res["changes"]
        autos = _drpoc_automations(prefect_client)
        assert len(autos) == 4 and all(len(v) == 1 for v in autos.values())
        assert "drpoc: work pool drpoc-pool not ready" not in autos
        for name, v in autos.items():
            assert v[0].id == ids[name] or name == "drpoc: drill or check failed"
        assert autos["drpoc: no completed run of dr-drill/weekly-drill"][0].trigger.within == timedelta(days=7, hours=1)
    finally:
        _delete_drpoc_automations(prefect_client)


# ---------------------------------------------------------------------------------------------- firing

def _journal(i: int) -> dict:
    started = datetime(2026, 1, 5, 3, 0, tzinfo=timezone.utc) + timedelta(days=7 * i)
    return {"drpoc": {"scenario": "vpn_outage", "run_id": uuid.uuid4().hex, "started": started.isoformat()},
            "experiment": {"title": "VPN outage"}, "status": "completed"}


def test_a_failed_dr_drill_run_fires_the_alert_webhook_and_records_the_ledger_head(prefect_client, deployed,
                                                                                    receiver, tmp_path):
    from drills import dr_drill

    from drpoc_chaos.evidence.archive import archive_journal
    from drpoc_chaos.evidence.ledger import ledger_head

    _delete_drpoc_automations(prefect_client)
    block = f"drpoc-alerts-{uuid.uuid4().hex[:6]}"
    archive = tmp_path / "journal"
    for i in range(2):
        archive_journal(_journal(i), archive)
    try:
        assert sch.apply_alerts(block=block, webhook_url=receiver.url, out=lambda m: None)["status"] == "applied"
        time.sleep(2)            # the triggers service loads a new automation asynchronously
        state = dr_drill(experiments=["experiments/vpn_outage.yaml"], inventory=str(tmp_path / "missing.yaml"),
                         archive_dir=str(archive), max_lateness_seconds=None, target_wait_seconds=30,
                         return_state=True)
        assert state.is_failed() and "does not exist" in str(state.message)
        run = prefect_client.read_flow_run(state.state_details.flow_run_id)

        seen = receiver.wait_for(lambda m: run.name in m.get("subject", ""), timeout=90)
        msg = seen[-1]
        assert msg["subject"] == f"drpoc ALERT: dr-drill run {run.name} ended Failed"
        assert f"Flow run {run.name} of dr-drill ended Failed" in msg["body"]
        assert "does not exist" in msg["body"] and str(run.id) in msg["body"]
        assert msg["text"].startswith(msg["subject"])

        # the ledger head, recorded outside the archive by the flow
        seq, entry_hash = ledger_head(archive)
        var = prefect_client.read_variable_by_name(sch.head_variable_name(archive))
        assert var.value["seq"] == seq == 2 and var.value["entry_hash"] == entry_hash
        assert var.value["archive"] == str(archive.resolve())
    finally:
        _delete_drpoc_automations(prefect_client)


def test_work_pool_not_ready_fires_the_pool_alert_and_only_for_our_pool(prefect_client, deployed, receiver):
    """The event the server's foreman emits when no worker polls the pool, emitted here (waiting for the foreman to
    give up on a worker takes minutes); the same event for another pool does not match."""
    from prefect.events import emit_event

    _delete_drpoc_automations(prefect_client)
    block = f"drpoc-alerts-{uuid.uuid4().hex[:6]}"
    pool = prefect_client.read_work_pool("drpoc-pool")
    try:
        assert sch.apply_alerts(block=block, webhook_url=receiver.url, out=lambda m: None)["status"] == "applied"
        time.sleep(2)
        for name, pool_id in (("other-pool", uuid.uuid4()), ("drpoc-pool", pool.id)):
            emit_event(event="prefect.work-pool.not-ready",
                       resource={"prefect.resource.id": f"prefect.work-pool.{pool_id}",
                                 "prefect.resource.name": name, "prefect.work-pool.type": "process"})
        seen = receiver.wait_for(lambda m: "not ready" in m.get("subject", ""), timeout=60)
        assert seen[-1]["subject"] == "drpoc ALERT: work pool drpoc-pool not ready (no worker)"
        assert "prefect worker start --pool drpoc-pool" in seen[-1]["body"]
        time.sleep(3)
        assert receiver.got.empty() and not any("other-pool" in json.dumps(m) for m in seen)
    finally:
        _delete_drpoc_automations(prefect_client)


def test_absence_trigger_fires_when_no_run_completes_within_its_window(prefect_client, deployed, receiver,
                                                                       tmp_path):
    """The shipped absence entry, on a deployment whose schedule fires every 5 s (+ 5 s grace: a 10 s window)."""
    _delete_drpoc_automations(prefect_client)
    data = yaml.safe_load((REPO / "flows" / "automations.yaml").read_text())
    absent = next(a for a in data["automations"] if a.get("expand") == "scheduled_deployment")
    absent["grace_seconds"] = 5
    f = tmp_path / "automations.yaml"
    f.write_text(yaml.safe_dump({"name_prefix": "drpoc: ", "notify": data["notify"], "automations": [absent]}))
    block = f"drpoc-alerts-{uuid.uuid4().hex[:6]}"
    sch.ensure_webhook_block(block, receiver.url)
    dep_id = deployed["dr-drill/weekly-drill"]
    target = al.DeploymentTarget(flow_name="dr-drill", name="weekly-drill", id=dep_id,
                                 schedules=[{"interval": 5}])
    items = al.expand_alerts(sch.load_alerts_config(f), [target], ["drpoc-pool"])
    assert len(items) == 1 and items[0]["trigger"]["within"] == 10
    doc = al.find_notification_block(prefect_client, block)
    try:
        al.apply_automations(prefect_client, al.build_automations(items, doc.id), prefix="drpoc: ")
        t0 = time.monotonic()
        seen = receiver.wait_for(lambda m: "weekly-drill" in m.get("subject", ""), timeout=90)
        assert time.monotonic() - t0 >= 5          # not before its window ran out
        assert seen[-1]["subject"] == "drpoc ALERT: no completed run of dr-drill/weekly-drill within 10 s"
        assert "at most 5 s between two runs, plus 5 s grace" in seen[-1]["body"]
    finally:
        _delete_drpoc_automations(prefect_client)


# ---------------------------------------------------------------------------------------------- ledger heads

def test_heads_are_recorded_once_each_bounded_and_exported_as_json_lines(prefect_client, tmp_path, monkeypatch):
    from drpoc_chaos.evidence.archive import archive_journal
    from drpoc_chaos.evidence.ledger import read_ledger

    archive = tmp_path / "archive"
    assert sch.record_ledger_head(archive) is None                      # no ledger yet: nothing recorded
    assert sch.recorded_heads(archive) == []
    archive_journal(_journal(0), archive)
    first = sch.record_ledger_head(archive)
    assert first["seq"] == 1 and set(first) == {"seq", "entry_hash", "recorded_at", "archive"}
    assert sch.record_ledger_head(archive) == first                     # the head did not move: not recorded again
    assert len(sch.recorded_heads(archive)) == 1

    # a small ring: 2 heads a page, 3 pages → the last 5 or 6 heads are kept
    monkeypatch.setattr(hd, "PAGE_SIZE", 2)
    monkeypatch.setattr(hd, "PAGES", 3)
    small = tmp_path / "small"
    for i in range(10):
        archive_journal(_journal(i), small)
        sch.record_ledger_head(small)
    heads = sch.recorded_heads(small)
    assert [h["seq"] for h in heads] == [5, 6, 7, 8, 9, 10]
    ledger = {e["seq"]: e["entry_hash"] for _, e, _ in read_ledger(small)}
    assert all(h["entry_hash"] == ledger[h["seq"]] and h["archive"] == str(small.resolve()) for h in heads)
    main = prefect_client.read_variable_by_name(sch.head_variable_name(small)).value
    assert main["count"] == 10 and main["seq"] == 10
    assert len(json.dumps(main)) < 5000

    # the export: one JSON object per line, this archive only (or every archive)
    out = tmp_path / "heads.jsonl"
    written = sch.write_heads_file(out, small)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == written and [line["seq"] for line in lines] == [5, 6, 7, 8, 9, 10]
    assert all(set(line) == {"seq", "entry_hash", "recorded_at", "archive"} for line in lines)
    every = {h["archive"] for h in sch.recorded_heads(None)}
    assert {str(archive.resolve()), str(small.resolve())} <= every
    assert sch.head_variable_name(archive) != sch.head_variable_name(tmp_path / "x" / "archive")

    # the command line, against the same server
    import subprocess
    import sys

    import prefect.settings as ps
    drpoc = [str(Path(sys.executable).parent / "drpoc"), "schedule", "heads", "--api-url",
             ps.PREFECT_API_URL.value()]
    cli_out = tmp_path / "cli-heads.jsonl"
    p = subprocess.run(drpoc + ["--archive", str(small), "--out", str(cli_out)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert cli_out.read_text() == out.read_text() and "6 recorded ledger head(s)" in p.stderr
    p = subprocess.run(drpoc + ["--archive", str(tmp_path / "never")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stdout == ""

    # usable by `drpoc verify ARCHIVE --heads FILE`: passes as is, and catches the ledger's last lines cut off
    verify = [str(Path(sys.executable).parent / "drpoc"), "verify", str(small), "--heads", str(cli_out)]
    p = subprocess.run(verify, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    ledger_file = small / "ledger.jsonl"
    ledger_file.write_text("".join(ledger_file.read_text().splitlines(keepends=True)[:8]))
    p = subprocess.run(verify, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "FINDING" in p.stdout, p.stdout


def test_default_page_size_fits_a_prefect_variable():
    heads = [[10 ** 6 + i, "f" * 64, "2026-11-29T17:01:02.123456Z"] for i in range(hd.PAGE_SIZE)]
    assert len(json.dumps({"archive": "/" + "a" * 200, "heads": heads})) < 5000
    assert (hd.PAGES - 1) * hd.PAGE_SIZE >= 480


# ---------------------------------------------------------------------------------------------- `drpoc schedule up`

def test_schedule_up_applies_the_alerts_once_block_or_not(receiver, tmp_path):
    """A real `prefect server start` on a free port (no worker, no lab): without the block `schedule up` still
    succeeds and says how to create it; `drpoc schedule alerts --webhook-url` creates the block and the alerts; a
    second `schedule up` leaves them unchanged; status lists them."""
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    state_dir = tmp_path / "prefect"
    msgs: list[str] = []
    try:
        up = sch.schedule_up(port=port, state_dir=state_dir, worker=False, timeout=120, out=msgs.append)
        assert up["alerts"]["status"] == "skipped" and "drpoc-alerts" in up["alerts"]["message"]
        assert any("NOT applied" in m for m in msgs)
        assert sch.schedule_status(state_dir=state_dir)["alerts"] == []

        drpoc = [str(Path(sys.executable).parent / "drpoc")]
        p = subprocess.run(drpoc + ["schedule", "alerts", "--state-dir", str(state_dir), "--webhook-url",
                                    receiver.url, "--json"], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        res = json.loads(p.stdout)
        assert res["status"] == "applied" and res["block"] == "custom-webhook/drpoc-alerts"
        assert [w for w, _ in res["changes"]] == ["created"] * 5

        msgs.clear()
        again = sch.schedule_up(port=port, state_dir=state_dir, worker=False, timeout=120, out=msgs.append)
        assert again["server_pid"] == up["server_pid"]
        assert [w for w, _ in again["alerts"]["changes"]] == ["unchanged"] * 5, msgs
        st = sch.schedule_status(state_dir=state_dir)
        assert len(st["alerts"]) == 5 and all(a["enabled"] for a in st["alerts"])

        p = subprocess.run(drpoc + ["schedule", "alerts", "--state-dir", str(state_dir), "--block", "nope"],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 3 and "no Prefect notification block named 'nope'" in p.stderr
    finally:
        down = sch.schedule_down(state_dir=state_dir, out=msgs.append)
    assert down["server"] == "stopped", msgs
