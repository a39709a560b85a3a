"""How the evidence layer scales: archive + ledger, verify and report on 1000 realistic journals, and how heavy the
resulting HTML is for a browser.

    .venv/bin/python benchmarks/review_scale.py [--journals 1000] [--samples 120] [--sign] [--no-browser]

Generates journals shaped like real vpn_outage drills (docs/JOURNAL.md; ~120-sample timelines, a mix of passed,
failed, precondition-failed, interrupted and generic runs, one every ~6 hours going back in time) in memory, then
times, in a temporary directory that is removed afterwards:
  1. archive_journal for each (redaction, file write + fsync, ledger append + fsync, flock), optionally signed;
  2. verify_archive over the whole archive;
  3. write_report (load, verify, history, HTML with one SVG timeline per drill, Markdown);
  4. the HTML's size, and its render in headless Chromium (when installed), driven over the DevTools pipe:
     - "load": Page.navigate → Page.loadEventFired (read + parse the whole file, style, lay out what is shown);
     - "first screen": + a screenshot of the first 1100x900 viewport (paint);
     - "full layout": then, in the page, ``content-visibility`` switched off for every drill and the document height
       read (performance.now() around it): a worst-case layout of all 1000 drills, as when printing or scrolling
       through everything. The page itself uses ``content-visibility: auto``, so a reader only pays for the
       drills on screen.
     Each figure is the median of 3 fresh page loads (the first load also warms the disk cache).
Targets on 2 cores: each Python step <= 5 s; HTML <= 5 MB; load + first screen <= 2 s. Bounded: fixed work, no
network, stops by itself.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drpoc_chaos.evidence.archive import archive_journal  # noqa: E402
from drpoc_chaos.evidence.ledger import generate_keypair, verify_archive  # noqa: E402
from drpoc_chaos.evidence.report import write_report  # noqa: E402
from drpoc_chaos.evidence.samples import make_journal  # noqa: E402

TARGET_SECONDS = 5.0
TARGET_HTML_MB = 5.0
TARGET_RENDER_SECONDS = 2.0
MIX = ["pass"] * 14 + ["deviated", "precondition", "interrupted", "generic"]

FULL_LAYOUT = """(() => {
  const t0 = performance.now();
  const s = document.createElement('style');
  s.textContent = 'article.drill{content-visibility:visible !important}';
  document.head.appendChild(s);
  const h = document.documentElement.scrollHeight;
  return {ms: performance.now() - t0, height: h, drills: document.querySelectorAll('article.drill').length,
          svgs: document.querySelectorAll('svg').length};
})()"""


def _browser_class():
    """The DevTools-pipe driver of the browser test (no websocket library, no port)."""
    spec = importlib.util.spec_from_file_location("_drpoc_browser",
                                                  ROOT / "tests" / "unit" / "test_evidence_browser.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod.Browser, mod.find_chromium


def measure_render(html: Path, tmp: Path, runs: int = 3) -> dict[str, float] | None:
    """Median seconds for load, load + first screen, and the worst-case full layout; None without Chromium."""
    Browser, find_chromium = _browser_class()
    chromium = find_chromium()
    if chromium is None:
        return None
    loads, firsts, fulls, info = [], [], [], {}
    for i in range(runs):
        browser = Browser(chromium, tmp / f"profile{i}", timeout=120.0)
        try:
            t = time.perf_counter()
            browser.open(html.resolve().as_uri())
            loads.append(time.perf_counter() - t)
            browser.screenshot(tmp / "first.png", {"x": 0, "y": 0, "width": 1100, "height": 900})
            firsts.append(time.perf_counter() - t)
            info = browser.evaluate(FULL_LAYOUT)
            fulls.append(info["ms"] / 1000)
            errors = browser.console_errors()
        finally:
            browser.close()
    return {"load": statistics.median(loads), "first": statistics.median(firsts),
            "full": statistics.median(fulls), "drills": info.get("drills"), "svgs": info.get("svgs"),
            "errors": len(errors)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--journals", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=120)
    ap.add_argument("--sign", action="store_true", help="sign every ledger entry with a fresh Ed25519 key")
    ap.add_argument("--no-browser", action="store_true", help="skip the Chromium render measurement")
    ap.add_argument("--keep", metavar="DIR", help="copy the generated HTML into DIR")
    args = ap.parse_args(argv)
    os.environ.pop("DRPOC_SIGNING_KEY_FILE", None)

    t0 = time.perf_counter()
    end = datetime(2026, 11, 29, 17, 0, tzinfo=timezone.utc)
    journals = [make_journal(MIX[i % len(MIX)], seed=i, samples=args.samples,
                             started=end - timedelta(hours=6 * (args.journals - i)))
                for i in range(args.journals)]
    gen = time.perf_counter() - t0

    with tempfile.TemporaryDirectory(prefix="drpoc-bench-") as tmp_s:
        tmp = Path(tmp_s)
        archive = tmp / "journal"
        key = None
        if args.sign:
            generate_keypair(tmp / "signing.pem")
            key = (tmp / "signing.pem").read_bytes()
        secrets = ["S3cr3t-Replica-Pw!", "0sVeryLongPreSharedKey=="]

        t = time.perf_counter()
        for j in journals:
            archive_journal(j, archive, secrets=secrets, signing_key=key)
        t_archive = time.perf_counter() - t
        size = sum(p.stat().st_size for p in archive.iterdir())

        t = time.perf_counter()
        report = verify_archive(archive, (tmp / "signing.pem.pub") if args.sign else None)
        t_verify = time.perf_counter() - t
        assert report.ok, report.findings[:3]

        t = time.perf_counter()
        html, md = write_report([archive], tmp / "review", now=end)
        t_report = time.perf_counter() - t
        html_mb, md_mb = html.stat().st_size / 1e6, md.stat().st_size / 1e6
        if args.keep:
            Path(args.keep).mkdir(parents=True, exist_ok=True)
            (Path(args.keep) / html.name).write_bytes(html.read_bytes())
        render = None if args.no_browser else measure_render(html, tmp)

    print(f"journals: {args.journals} x {args.samples} samples, archive {size / 1e6:.1f} MB "
          f"(generated in memory in {gen:.2f} s), cpus {os.cpu_count()}, signed: {args.sign}")
    rows = [("archive + ledger write", t_archive, f"{t_archive / args.journals * 1000:.2f} ms/journal"),
            ("verify_archive", t_verify, f"{report.entries} entries"),
            ("write_report", t_report, f"HTML {html_mb:.2f} MB, Markdown {md_mb:.2f} MB")]
    ok = True
    for name, secs, note in rows:
        flag = "ok" if secs <= TARGET_SECONDS else "OVER TARGET"
        ok &= secs <= TARGET_SECONDS
        print(f"  {name:<24} {secs:6.2f} s  ({note})  [{flag}, target <= {TARGET_SECONDS:g} s]")
    flag = "ok" if html_mb <= TARGET_HTML_MB else "OVER TARGET"
    ok &= html_mb <= TARGET_HTML_MB
    print(f"  {'HTML size':<24} {html_mb:6.2f} MB [{flag}, target <= {TARGET_HTML_MB:g} MB]")
    if render is None:
        print("  Chromium render          skipped (--no-browser or Chromium not installed)")
    else:
        first_ok = render["first"] <= TARGET_RENDER_SECONDS
        ok &= first_ok
        print(f"  {'Chromium load':<24} {render['load']:6.2f} s  (navigate -> load event, median of 3)")
        print(f"  {'Chromium first screen':<24} {render['first']:6.2f} s  (load + paint of the first viewport) "
              f"[{'ok' if first_ok else 'OVER TARGET'}, target <= {TARGET_RENDER_SECONDS:g} s]")
        print(f"  {'Chromium full layout':<24} {render['full']:6.2f} s  (worst case: all {render['drills']} drills "
              f"laid out, {render['svgs']} SVGs; console errors: {render['errors']})")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
