"""The HTML review in a real browser: headless Chromium, offline, no console error, the charts render.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: fd 3 in, fd 4 out), so no
port is opened and no Python websocket library is needed. The test is skipped only when Chromium is not installed
(Debian: ``apt-get install -y chromium``).

Run as a script to refresh the screenshot in the docs:
    .venv/bin/python tests/unit/test_evidence_browser.py docs/review-screenshot.png
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """A headless Chromium page driven over the DevTools pipe; records console errors and network requests."""

    def __init__(self, chromium: str, profile: Path, timeout: float = 60.0) -> None:
        self.timeout = timeout
        cmd_r, self._cmd_w = os.pipe()
        self._res_r, res_w = os.pipe()
        # Move the child's ends above fd 10 so that mapping them onto 3 and 4 cannot clobber one another.
        cmd_r, res_w = (self._above_ten(fd) for fd in (cmd_r, res_w))
        self._stderr = tempfile.TemporaryFile()
        args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--hide-scrollbars", "--mute-audio", f"--user-data-dir={profile}",
                "--enable-logging=stderr", "--v=0", "--remote-debugging-pipe", "about:blank"]
        # bash maps our pipe ends onto fds 3 and 4, where Chromium expects them.
        script = f'exec "$0" "$@" 3<&{cmd_r} 4>&{res_w} {cmd_r}<&- {res_w}>&-'
        self.proc = subprocess.Popen(["bash", "-c", script, *args], pass_fds=(cmd_r, res_w),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr)
        os.close(cmd_r)
        os.close(res_w)
        self._buf = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None

    @staticmethod
    def _above_ten(fd: int) -> int:
        high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
        os.close(fd)
        return high

    # -- protocol
    def _send(self, method: str, params: dict[str, Any] | None = None, session: bool = True) -> int:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        return self._next_id

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self._res_r], [], [], left)
            if ready:
                chunk = os.read(self._res_r, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the DevTools pipe: {self.stderr_tail()}")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict[str, Any] | None = None, session: bool = True) -> dict[str, Any]:
        mid = self._send(method, params, session)
        deadline = time.monotonic() + self.timeout
        while True:
            msg = self._read_message(deadline)
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_event(self, method: str) -> dict[str, Any]:
        for ev in self.events:
            if ev["method"] == method:
                return ev
        deadline = time.monotonic() + self.timeout
        while True:
            msg = self._read_message(deadline)
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == method:
                    return msg

    # -- page
    def open(self, url: str, width: int = 1100, height: int = 900) -> None:
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        self.call("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        res = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in res:
            raise RuntimeError(f"evaluate failed: {res['exceptionDetails']}")
        return res["result"].get("value")

    def screenshot(self, path: Path, clip: dict[str, float] | None = None) -> None:
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": True}
        if clip:
            params["clip"] = {**clip, "scale": 1}
        data = self.call("Page.captureScreenshot", params)["data"]
        path.write_bytes(base64.b64decode(data))

    def console_errors(self) -> list[str]:
        out = []
        for ev in self.events:
            m, p = ev["method"], ev.get("params", {})
            if m == "Runtime.exceptionThrown":
                out.append(f"exception: {p.get('exceptionDetails', {}).get('text')}")
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(f"console.{p.get('type')}: {p.get('args')}")
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
            elif m == "Network.loadingFailed":
                out.append(f"network: {p.get('errorText')}")
        return out

    def requested_urls(self) -> list[str]:
        return [ev["params"]["request"]["url"] for ev in self.events if ev["method"] == "Network.requestWillBeSent"]

    def stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-2000:]

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self.session = None
                    self._send("Browser.close", session=False)
                    self.proc.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    pass
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
            os.close(self._cmd_w)
            os.close(self._res_r)
            self._stderr.close()


CHART_CHECK = """(() => {
  const svgs = [...document.querySelectorAll('svg.timeline')];
  const first = svgs[0];
  const box = first ? first.getBoundingClientRect() : null;
  const series = first ? [...first.querySelectorAll('path.series')].map(p => ({
      name: p.dataset.series, len: p.getTotalLength(), w: p.getBBox().width})) : [];
  const states = first ? [...first.querySelectorAll('rect.state')].filter(r => r.getBBox().width > 0).length : 0;
  const markers = first ? [...first.querySelectorAll('g.marker')].map(g => g.dataset.event) : [];
  const trend = document.querySelector('svg.trend');
  const tbox = trend ? trend.getBoundingClientRect() : null;
  const fig = first ? first.closest('article').getBoundingClientRect() : null;
  return {count: svgs.length, width: box && box.width, height: box && box.height, series, states, markers,
          trendWidth: tbox && tbox.width, trendSeries: trend ? trend.querySelectorAll('path.series').length : 0,
          scripts: document.scripts.length, title: document.title,
          articleTop: fig && fig.top + window.scrollY,
          chartBottom: box && box.bottom + window.scrollY,
          pageHeight: document.documentElement.scrollHeight};
})()"""


def build_report(tmp: Path) -> Path:
    from drpoc_chaos.evidence.archive import archive_journal
    from drpoc_chaos.evidence.report import write_report
    from drpoc_chaos.evidence.samples import make_journal

    archive = tmp / "journal"
    start = datetime(2026, 10, 4, 17, 0, tzinfo=timezone.utc)
    kinds = ["pass", "pass", "deviated", "pass", "precondition", "pass", "interrupted", "pass", "generic", "pass"]
    for i, kind in enumerate(kinds):
        archive_journal(make_journal(kind, seed=i + 3, samples=120, started=start + timedelta(days=7 * i, minutes=i)),
                        archive, signing_key=None)
    (tmp / "broken.json").write_text('{"chaoslib-version": "1.44.0", "experiment": {"title": "x"', encoding="utf-8")
    html, _ = write_report([archive, tmp / "broken.json"], tmp / "out",
                           now=start + timedelta(days=7 * len(kinds) + 2))
    return html


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install -y chromium); browser test skipped")
    return path


@pytest.fixture(scope="module")
def rendered(chromium, tmp_path_factory, monkeypatch_module):
    tmp = tmp_path_factory.mktemp("browser")
    html = build_report(tmp)
    browser = Browser(chromium, tmp / "profile")
    try:
        browser.open(html.resolve().as_uri())
        info = browser.evaluate(CHART_CHECK)
        shot = tmp / "report.png"
        browser.screenshot(shot, {"x": 0, "y": 0, "width": 1100, "height": min(info["pageHeight"], 2400)})
        yield {"info": info, "errors": browser.console_errors(), "urls": browser.requested_urls(), "shot": shot,
               "html": html}
    finally:
        browser.close()


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    mp.delenv("DRPOC_SIGNING_KEY_FILE", raising=False)
    yield mp
    mp.undo()


def test_no_console_error_and_offline(rendered):
    assert rendered["errors"] == []
    # The only thing loaded is the report itself: no script, font, image or stylesheet from anywhere.
    assert rendered["urls"] == [rendered["html"].resolve().as_uri()]
    assert rendered["info"]["scripts"] == 0


def test_timeline_chart_renders(rendered):
    info = rendered["info"]
    assert info["count"] == 9  # every drpoc drill has a timeline; the generic journal has none
    assert info["width"] > 500 and info["height"] > 250
    names = {s["name"] for s in info["series"] if s["len"] > 0 and s["w"] > 0}
    assert {"heartbeat_lag", "seconds_behind", "source_rows", "replica_rows"} <= names
    assert info["states"] >= 8  # runs of state drawn in the four lanes
    assert {"fault_injected", "outage_detected", "recovery_started", "tunnel_up", "io_reconnected",
            "caught_up"} <= set(info["markers"])
    assert info["trendWidth"] > 500 and info["trendSeries"] == 3


def test_screenshot_is_a_png(rendered):
    data = rendered["shot"].read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000



EVIL_CHECK = """(() => ({
  elements: document.querySelectorAll('x-evil').length,
  text: document.body.innerText.includes('<x-evil id="pwn">scenario'),
  reason: document.body.innerText.includes('<x-evil id="pwn"> reason'),
  svgTitle: (document.querySelector('svg.timeline title') || {}).textContent || '',
  markers: document.querySelectorAll('svg.timeline g.marker').length,
}))()"""


def test_journal_text_stays_text_in_the_browser(chromium, tmp_path, monkeypatch):
    """Autoescaped templates and the escaped SVG: markup written into a journal is shown, never parsed."""
    from drpoc_chaos.evidence.report import write_report
    from drpoc_chaos.evidence.samples import make_journal

    monkeypatch.delenv("DRPOC_SIGNING_KEY_FILE", raising=False)
    evil = '<x-evil id="pwn">'
    j = make_journal("deviated", seed=4)
    j["drpoc"]["scenario"] = evil + "scenario"
    j["drpoc"]["verdict"]["reasons"] = [evil + " reason"]
    j["drpoc"]["events"] = [dict(e, name=evil) if e["name"] == "fault_injected" else e for e in j["drpoc"]["events"]]
    (tmp_path / "evil.json").write_text(json.dumps(j), encoding="utf-8")
    html, _ = write_report([tmp_path / "evil.json"], tmp_path / "out", now=datetime(2026, 12, 1, tzinfo=timezone.utc))
    browser = Browser(chromium, tmp_path / "profile")
    try:
        browser.open(html.resolve().as_uri())
        info = browser.evaluate(EVIL_CHECK)
        errors = browser.console_errors()
    finally:
        browser.close()
    assert info["elements"] == 0 and info["text"] and info["reason"], info
    assert evil + "scenario" in info["svgTitle"] and info["markers"] >= 5
    assert errors == []

def main(argv: list[str]) -> int:
    """Screenshot a sample report: the page down to the first drill's timeline, or only that drill (``--drill``)."""
    out = Path(argv[0]) if argv else Path("docs/review-screenshot.png")
    chromium = find_chromium()
    if chromium is None:
        print("Chromium is not installed", file=sys.stderr)
        return 2
    os.environ.pop("DRPOC_SIGNING_KEY_FILE", None)
    out = out.resolve()
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp_s:
        os.chdir(tmp_s)  # relative input paths read better in the picture
        tmp = Path(".")
        html = build_report(tmp)
        browser = Browser(chromium, tmp / "profile")
        try:
            browser.open(html.resolve().as_uri())
            info = browser.evaluate(CHART_CHECK)
            if "--drill" in argv:
                top = info["articleTop"] - 10
                clip = {"x": 0, "y": top, "width": 1100, "height": info["chartBottom"] - top + 60}
            else:  # from the top of the page to the end of the first drill's timeline
                clip = {"x": 0, "y": 0, "width": 1100, "height": info["chartBottom"] + 60}
            browser.screenshot(out, clip)
            errors = browser.console_errors()
        finally:
            browser.close()
            os.chdir(cwd)
    print(f"wrote {out}; console errors: {errors or 'none'}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    raise SystemExit(main(sys.argv[1:]))
