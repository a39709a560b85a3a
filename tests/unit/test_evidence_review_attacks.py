"""Attacks on the review and its redaction: each test failed on the code before this change."""
from __future__ import annotations

import base64
import html as htmlmod
import json
import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from drpoc_chaos.evidence.archive import archive_journal
from drpoc_chaos.evidence.cli import review_command
from drpoc_chaos.evidence.history import build_history
from drpoc_chaos.evidence.ledger import LEDGER_NAME
from drpoc_chaos.evidence.model import load_journals, normalise_journal
from drpoc_chaos.evidence.redact import REDACTED, is_reference, is_secret_key, redact, secret_forms
from drpoc_chaos.evidence.report import render_html, render_markdown, write_report
from drpoc_chaos.evidence.samples import make_journal
from drpoc_chaos.evidence.svg import downsample, timeline_svg

JOURNALS = Path(__file__).parent / "journals"
HOSTILE = JOURNALS / "hostile_secrets.json"
SECRET = 'S3cr3t-Pa55!w0rd"\\q'
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def _no_signing_env(monkeypatch):
    monkeypatch.delenv("DRPOC_SIGNING_KEY_FILE", raising=False)


def leaks(text: str, secret: str = SECRET) -> list[str]:
    """Every form of ``secret`` found in ``text``: raw, URL-, JSON-, repr-, HTML-escaped, hex, and any base64 token
    whose decoding holds the secret (a Basic-auth pair)."""
    found = [f for f in secret_forms(secret) | {htmlmod.escape(secret), htmlmod.escape(json.dumps(secret)[1:-1])}
             if f in text]
    prefix = secret[:11]  # "S3cr3t-Pa55": no form of the secret may survive, not even cut short
    if prefix in text:
        found.append(prefix)
    for token in re.findall(r"[A-Za-z0-9+/_\-]{8,}={0,2}", text):
        for offset in range(4):
            chunk = token.rstrip("=")[offset:]
            chunk += "=" * (-len(chunk) % 4)
            for decode in (base64.b64decode, base64.urlsafe_b64decode):
                try:
                    if prefix.encode() in decode(chunk):
                        found.append(token)
                except ValueError:
                    pass
    return found


def test_the_hostile_journal_really_holds_every_form():
    raw = HOSTILE.read_text()
    data = json.loads(raw)
    reasons = "\n".join(data["drpoc"]["verdict"]["reasons"])
    for form in (SECRET, quote(SECRET, safe=""), quote_plus(SECRET), SECRET.encode().hex(), repr(SECRET)[1:-1],
                 json.dumps(SECRET)[1:-1], base64.b64encode(f"repl:{SECRET}".encode()).decode()):
        assert form in reasons, form
    assert SECRET in "".join(data["rollbacks"][0]["exception"])
    assert leaks(raw)  # our own detector finds it: it can fail
    conf = data["experiment"]["configuration"]
    for key in ("passphrase", "Authorization", "api_key", "token", "credentials", "auth", "pwd", "pass", "db_pw"):
        assert conf[key] == SECRET


def test_archive_html_and_markdown_hold_no_form_of_the_secret(tmp_path):
    entry = archive_journal(json.loads(HOSTILE.read_text()), tmp_path / "journal", secrets=[SECRET])
    stored = entry.path.read_text()
    assert leaks(stored) == []
    assert "AKIAIOSFODNN7EXAMPLE" not in stored  # {"key": "AKIA…"} is not a reference
    html_path, md_path = write_report([tmp_path / "journal"], tmp_path / "out", now=NOW)
    for text in (html_path.read_text(), md_path.read_text()):
        assert leaks(text) == [] and "AKIAIOSFODNN7EXAMPLE" not in text
    # The facts that are not secret are still there.
    assert "replica connect failed for repl:***@10.20.11.123" in html_path.read_text()


@pytest.mark.parametrize("secrets", [[SECRET], []], ids=["known-secret", "found-in-the-journal"])
def test_review_of_a_journal_not_archived_is_redacted(tmp_path, secrets):
    journal = tmp_path / "loose.json"
    shutil.copy(HOSTILE, journal)
    out = []

    class Out:
        def write(self, s):
            out.append(s)

        def flush(self):
            pass

    review_command([str(journal)], str(tmp_path / "out"), out=Out(), secrets=secrets)
    for name in ("drpoc-review.html", "drpoc-review.md"):
        text = (tmp_path / "out" / name).read_text()
        assert leaks(text) == [], name
    assert leaks("".join(out)) == []


def test_password_in_reasons_of_a_loose_journal_without_any_key_is_scrubbed(tmp_path):
    j = make_journal("deviated", seed=1)
    j["drpoc"]["verdict"]["reasons"] = ["retry: mysql -urepl -pHunter2Hunter2 failed", "password=Hunter2Hunter2"]
    (tmp_path / "x.json").write_text(json.dumps(j))
    html, md = write_report([tmp_path / "x.json"], tmp_path / "out", now=NOW)
    assert "Hunter2Hunter2" not in html.read_text() and "Hunter2Hunter2" not in md.read_text()


@pytest.mark.parametrize("key", ["passphrase", "Authorization", "api_key", "apiKey", "token", "credentials", "auth",
                                 "pwd", "pass", "db_pw", "mysql_password", "MYSQL-PASSWORD", "access_key",
                                 "private_key", "client.secret", "x-auth-token", "vpn_psk"])
def test_secret_key_names(key):
    assert is_secret_key(key)
    assert redact({key: "opaque-value-1"}) == {key: REDACTED}


@pytest.mark.parametrize("key", ["passed", "bypass", "tolerance_met", "keyword", "key_file", "author", "passes",
                                 "scenario", "status", "drpoc"])
def test_ordinary_keys_are_not_secret(key):
    assert not is_secret_key(key)


@pytest.mark.parametrize("ref", [{"key": "AKIAIOSFODNN7EXAMPLE"}, {"env": "S3cr3t-Pa55!w0rd"},
                                 {"type": "env", "key": "AKIAIOSFODNN7EXAMPLE"}, {"env": "aB3xQ9zK2mPq"},
                                 {"file": "hunter2 hunter2"}, {"secret": "ghp_abcdefghijklmnop"},
                                 {"env": "ASIAABCDEFGHIJKLMNOP"}])
def test_credential_looking_references_are_not_kept(ref):
    assert not is_reference(ref)
    out = redact({"password": ref})
    assert all(v == REDACTED for v in out["password"].values())


@pytest.mark.parametrize("ref", [{"env": "DRPOC_MYSQL_PASSWORD"}, {"env": "MYSQL_PWD"}, {"secret": "mysql.password"},
                                 {"file": "/etc/ipsec.d/onprem-aws.psk"}, {"type": "env", "key": "VPN_TOKEN2"},
                                 {"file": "~/.config/drpoc/db-password"}])
def test_plausible_references_keep_their_name(ref):
    assert is_reference(ref) and redact({"password": ref}) == {"password": ref}


# ------------------------------------------------------------------------------------------------ integrity
def _archive(tmp_path, kinds):
    archive = tmp_path / "journal"
    entries = [archive_journal(make_journal(k, seed=i, started=NOW - timedelta(days=20 - i)), archive)
               for i, k in enumerate(kinds)]
    return archive, entries


def test_broken_chain_never_shows_all_verified_or_green_rows(tmp_path):
    archive, entries = _archive(tmp_path, ["pass", "deviated", "pass", "pass"])
    ledger = archive / LEDGER_NAME
    lines = ledger.read_text().splitlines(keepends=True)
    ledger.write_text("".join(lines[:1] + lines[2:]))  # delete the failed drill's ledger line
    entries[1].path.unlink()  # and its journal: the pass rate looks perfect
    html_path, md_path = write_report([archive], tmp_path / "out", now=NOW)
    html, md = html_path.read_text(), md_path.read_text()
    assert "3 of 3 journal(s) verified" not in html and "3 of 3 journal(s) verified" not in md
    assert "FAILED:" in html and 'id="integrity-alert"' in html and "FAILED:" in md
    assert ">verified<" not in html  # no green badge anywhere
    assert html.count("unconfirmed") >= 3


def test_modified_and_badly_signed_drills_leave_the_pass_rate_and_the_trend(tmp_path):
    archive, entries = _archive(tmp_path, ["deviated", "pass", "deviated", "pass", "deviated", "deviated",
                                           "deviated"])
    # Forge a failure into a pass: the file no longer matches its ledger line.
    forged = json.loads(entries[0].path.read_text())
    forged["drpoc"]["verdict"] = {"passed": True, "status": "passed", "reasons": []}
    entries[0].path.write_text(json.dumps(forged))
    records, problems = load_journals([archive])
    history = build_history(records, now=NOW)
    assert history.judged == 6 and history.passed == 2  # the forged one is not counted at all
    assert [r.file for r in history.excluded] == [entries[0].file]
    vpn = next(s for s in history.scenarios if s.scenario == "vpn_outage")
    assert entries[0].run_id not in {p.run_id for p in vpn.trend}
    html = render_html(records, problems, history)
    assert "Excluded: journals that cannot be trusted (1)" in html
    assert "modified: excluded" in html


# ------------------------------------------------------------------------------------------------ outcomes
def _not_started(seed=1, cause="unreachable"):
    j = make_journal("pass", seed=seed, started=NOW - timedelta(days=2))
    j["drpoc"]["verdict"] = {"passed": False, "status": "not-started", "cause": cause,
                             "reasons": ["could not reach aws-vpn", "the second reason is the real cause: ssh refused"]}
    return j


def _died(seed=2, fired=True):
    j = make_journal("pass", seed=seed, started=NOW - timedelta(days=1))
    j["drpoc"]["verdict"] = {"passed": False, "status": "died",
                             "reasons": ["the drill died during 'hold-outage'", "the fault had been injected"]}
    j["drpoc"]["died"] = {"detected_by": "drpoc recover", "last_step": "hold-outage",
                          "deadman": {"fired_at": "2026-11-30T12:00:00Z", "outcome": "restored"} if fired else None,
                          "recover": {"ok": True}}
    return j


def test_not_started_is_counted_apart_and_died_is_a_failure(tmp_path):
    for name, j in (("a.json", make_journal("pass", seed=3, started=NOW - timedelta(days=3))),
                    ("b.json", _not_started()), ("c.json", _died())):
        (tmp_path / name).write_text(json.dumps(j))
    records, problems = load_journals([tmp_path / n for n in ("a.json", "b.json", "c.json")])
    assert [p for p in problems if p.kind == "missing-keys"] == []
    history = build_history(records, now=NOW)
    assert history.judged == 2 and history.passed == 1 and history.died == 1
    assert [r.cause for r in history.not_started] == ["unreachable"]
    html = render_html(records, problems, history)
    md = render_markdown(records, problems, history)
    for text in (html, md):
        assert "Not started (1)" in text and "unreachable" in text
        assert "the second reason is the real cause: ssh refused" in text
        assert "hold" in text and "FIRED" in text
    assert "1 of 2 judged drill(s) passed (50%)" in html


def test_cli_prints_every_reason_and_the_switch(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps(_died(fired=False)))
    (tmp_path / "b.json").write_text(json.dumps(_not_started(cause="auth")))
    out = []

    class Out:
        def write(self, s):
            out.append(s)

    review_command([str(tmp_path)], str(tmp_path / "out"), out=Out())
    text = "".join(out)
    assert "the fault had been injected" in text and "did not fire" in text
    assert "NOT STARTED" in text and "cause auth" in text and "ssh refused" in text


# ------------------------------------------------------------------------------------------------ Markdown
def test_markdown_escapes_everything_from_a_journal(tmp_path):
    j = make_journal("deviated", seed=5)
    j["drpoc"]["scenario"] = "evil<script>x</script>\n# injected heading | cell"
    j["drpoc"]["verdict"]["status"] = "failed <b>bold</b>\n\n- list item"
    j["drpoc"]["verdict"]["reasons"] = ["[click](http://x) ![img](http://y) *em* `code` | pipe\nnext line"]
    (tmp_path / "x.json").write_text(json.dumps(j))
    records, problems = load_journals([tmp_path / "x.json"])
    md = render_markdown(records, problems, build_history(records, now=NOW))
    assert "<script" not in md and "<b>" not in md
    assert "\n# injected" not in md and "\n- list item" not in md and "\nnext line" not in md
    assert "](http" not in md.replace("\\]", "") and "![" not in md.replace("\\!", "")
    # No journal text can add a table cell: every row keeps its header's cell count.
    rows = [line for line in md.splitlines() if line.startswith("|")]
    assert rows
    for line in rows:
        cells = len(re.findall(r"(?<!\\)\|", line))
        assert cells >= 3 and line.endswith("|")
    headed = [(i, line) for i, line in enumerate(md.splitlines()) if line.startswith("|---")]
    lines = md.splitlines()
    for i, sep in headed:
        width = sep.count("|")
        j = i + 1
        while j < len(lines) and lines[j].startswith("|"):
            assert len(re.findall(r"(?<!\\)\|", lines[j])) == width, lines[j]
            j += 1
    html = render_html(records, problems, build_history(records, now=NOW))
    assert "<script>x" not in html and "<b>bold" not in html


# ------------------------------------------------------------------------------------------------ size
def test_long_timelines_are_downsampled_keeping_every_state_change_and_extreme():
    j = make_journal("deviated", seed=9, samples=20_000)
    rec, _ = normalise_journal(j, "long.json")
    small = downsample(rec.timeline)
    assert len(small) <= 600 < len(rec.timeline)

    def changes(samples):
        out, prev = [], None
        for s in samples:
            sig = tuple(str(s.get(k)) for k in ("io", "sql", "aws_tunnel", "onprem_tunnel"))
            if sig != prev:
                out.append((s["t"], sig))
                prev = sig
        return out

    assert changes(small) == changes(rec.timeline)
    for key in ("heartbeat_lag", "seconds_behind", "replica_rows"):
        full = [s[key] for s in rec.timeline if isinstance(s.get(key), (int, float))]
        kept = [s[key] for s in small if isinstance(s.get(key), (int, float))]
        assert max(full) == max(kept) and min(full) == min(kept)
    assert len(timeline_svg(rec)) < 40_000
    assert len(rec.timeline) == 20_000  # the record (and the journal) keep every sample


def test_a_thousand_drills_stay_under_5_mb(tmp_path):
    records = [normalise_journal(make_journal("pass" if i % 5 else "deviated", seed=i, samples=120,
                                              started=NOW - timedelta(hours=6 * i)), f"{i}.json")[0]
               for i in range(1000)]
    html = render_html(records, [], build_history(records, now=NOW))
    assert len(html.encode()) < 5_000_000  # 19.4 MB before
    assert html.count('<article class="drill"') == 1000  # every drill keeps its entry
    assert html.count('<svg class="timeline"') == 100
