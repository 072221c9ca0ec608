"""The CLI's final report and the 0002 migration (upgrade and downgrade)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dicomgate.cli import build_parser
from dicomgate.conversions.commands import format_summary
from dicomgate.conversions.service import RunSummary
from dicomgate.migrations import downgrade_database, upgrade_database
from dicomgate.settings import Settings


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
