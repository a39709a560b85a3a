"""Evidence: the journal archive, its hash-chained (optionally signed) ledger, the review model and the report.

    archive_journal(journal, archive_dir, secrets, signing_key) -> ArchiveEntry   redact, store, record
    verify_archive(archive_dir, public_key) -> VerifyReport                      prove nothing was altered
    load_journals(paths) -> (records, problems)                                  normalise journals for review
    write_report(paths, out_dir) -> (html_path, md_path)                          the report a person reads

See docs/EVIDENCE.md.
"""
from __future__ import annotations

from .archive import ArchiveEntry, archive_journal, list_archive
from .ledger import Finding, LedgerError, VerifyReport, generate_keypair, verify_archive
from .model import DrillRecord, Problem, load_journals
from .redact import redact
from .report import render_html, render_markdown, write_report

__all__ = [
    "ArchiveEntry", "archive_journal", "list_archive",
    "Finding", "LedgerError", "VerifyReport", "generate_keypair", "verify_archive",
    "DrillRecord", "Problem", "load_journals",
    "redact",
    "render_html", "render_markdown", "write_report",
]
