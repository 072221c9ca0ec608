"""The CLI's final report and the 0002 migration (upgrade and downgrade)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from dicomgate.cli import build_parser
from dicomgate.conversions.commands import approximate_duration, format_summary
from dicomgate.conversions.lifecycle import RunSummary, begin_run, finish_run, summary_of
from dicomgate.conversions.plan import make_selection
from dicomgate.conversions.repository import create_job, get_job
from dicomgate.db import session_scope
from dicomgate.migrations import downgrade_database, upgrade_database
from dicomgate.runtime import open_runtime
from dicomgate.settings import Settings
from tests.conversions.helpers import make_settings
from tests.orthanc_process import OrthancProcess


def test_second_run_summary_says_why_nothing_was_converted() -> None:
    summary = RunSummary(
        job_id=7,
        state="completed",
        dry_run=False,
        selection="all studies",
        skipped=5,
        skipped_by_reason={"already_htj2k": 3, "no_pixel_data": 2},
        bytes_before=1000,
        bytes_after=1000,
        elapsed=2.0,
        instances_this_run=5,
    )
    text = format_summary(summary)
    assert "Conversion job 7 (all studies): completed" in text
    assert "Converted: 0" in text
    assert "Already HTJ2K: 3" in text
    assert "Skipped: 2 no pixel data" in text
    assert "Failed: 0" in text
    assert "saved 0.0%" in text
    assert "2.5 instances/s" in text


async def test_a_run_ends_and_the_queue_reports_with_the_same_counts_from_the_job_row(
    clean_orthanc: OrthancProcess, tmp_path: Path
) -> None:
    """What a run's end (finish_run) and the CLI waiting on the queue (summary_of) report is
    the job's row, field by field: counts, reasons, bytes, errors."""
    settings = await asyncio.to_thread(make_settings, clean_orthanc, tmp_path)
    async with open_runtime(settings) as runtime:
        async with session_scope(runtime.sessions) as session:
            job = await create_job(
                session, selection=make_selection(study="1.2.826.0.1.3680043.10.9.7"), dry_run=False
            )
            job.converted, job.skipped, job.failed = 3, 2, 1
            job.skipped_by_reason = {"already_htj2k": 1, "no_pixel_data": 1}
            job.bytes_before, job.bytes_after = 6000, 2500
            job.elapsed = 1.5
            job.errors = ["Failed instance abc: boom"]
            job_id = job.id
        begun = await begin_run(runtime, job_id, dry_run=False)
        ended = await finish_run(runtime, begun.summary, begun.started, "completed")
        async with session_scope(runtime.sessions) as session:
            read = summary_of(await get_job(session, job_id))
    for summary in (ended, read):
        counts = (summary.converted, summary.skipped, summary.failed, summary.done)
        assert counts == (3, 2, 1, 6)
        assert summary.skipped_by_reason == {"already_htj2k": 1, "no_pixel_data": 1}
        assert (summary.bytes_before, summary.bytes_after) == (6000, 2500)
        assert summary.errors == ["Failed instance abc: boom"]
        assert (summary.job_id, summary.state, summary.dry_run) == (job_id, "completed", False)
    assert read.selection == "study 1.2.826.0.1.3680043.10.9.7"
    assert read.elapsed == pytest.approx(1.5 + ended.elapsed)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "under 1 s"), (0.49, "under 1 s"), (0.99, "under 1 s"), (1.2, "~1 s"), (600, "~10 min")],
)
def test_projected_time_is_never_about_zero_seconds(seconds: float, text: str) -> None:
    assert approximate_duration(seconds) == text


@pytest.mark.parametrize(
    "argv",
    [
        ["convert-to-htj2k"],
        ["convert-to-htj2k", "--all", "--study", "1.2.3"],
    ],
)
def test_cli_needs_exactly_one_selector(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2


def test_migration_upgrades_and_downgrades(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    settings = Settings(database_url=f"sqlite+aiosqlite:///{db}")

    def tables() -> set[str]:
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            return {r[0] for r in rows}

    upgrade_database(settings, revision="0002_conversions")
    assert {"conversion_jobs", "conversion_outcomes"} <= tables()
    downgrade_database(settings, revision="0001_patients")
    assert not {"conversion_jobs", "conversion_outcomes"} & tables()
    assert "patients" in tables()


def test_migration_0005_adds_estimate_retry_and_attempt_columns(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    settings = Settings(database_url=f"sqlite+aiosqlite:///{db}")

    def columns(table: str) -> set[str]:
        with sqlite3.connect(db) as conn:
            return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}

    upgrade_database(settings, revision="0004_audit_events")
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO conversion_jobs (selector, dry_run, state, cancel_requested, "
            "instances_total, converted, skipped, failed, skipped_by_reason, bytes_before, "
            "bytes_after, elapsed, errors) VALUES ('all', 0, 'interrupted', 0, 1, 0, 0, 1, "
            "'{}', 10, 10, 0.5, '[]')"
        )
        conn.execute(
            "INSERT INTO conversion_outcomes (job_id, orthanc_id, study_instance_uid, "
            "sop_instance_uid, outcome, bytes_before, bytes_after) "
            "VALUES (1, 'abc', '1.2', '1.2.3', 'failed', 10, 10)"
        )

    upgrade_database(settings, revision="0005_conversion_estimates")
    assert {"retried", "sample_size", "estimate"} <= columns("conversion_jobs")
    assert "attempts" in columns("conversion_outcomes")
    with sqlite3.connect(db) as conn:
        job = conn.execute("SELECT retried, sample_size, estimate FROM conversion_jobs").fetchone()
        attempts = conn.execute("SELECT attempts FROM conversion_outcomes").fetchone()
    assert job == (0, None, None)
    assert attempts == (1,)

    downgrade_database(settings, revision="0004_audit_events")
    assert not {"retried", "sample_size", "estimate"} & columns("conversion_jobs")
    assert "attempts" not in columns("conversion_outcomes")
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM conversion_outcomes").fetchone() == (1,)
