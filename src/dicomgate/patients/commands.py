"""``dicomgate patients import FILE``: the bulk import, from the command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from dicomgate.errors import DicomgateError
from dicomgate.patients.importer import ImportFormat, detect_format
from dicomgate.patients.schemas import ImportReport
from dicomgate.settings import Settings


def register(subparsers: Any) -> None:
    """Add ``patients import`` to the ``dicomgate`` command."""
    patients = subparsers.add_parser("patients", help="the patient cache")
    sub = patients.add_subparsers(dest="patients_command", required=True)
    imp = sub.add_parser(
        "import",
        help="upsert patients from a CSV or JSON file",
        description="CSV header: patient_id,family_name,given_name,birth_date,gender. "
        "JSON: a list of objects with those keys. Exit status 1 if any row is rejected.",
    )
    imp.add_argument("file", type=Path, help="the .csv or .json file")
    imp.add_argument(
        "--format", choices=["csv", "json"], default=None, help="override the file extension"
    )
    imp.set_defaults(func=import_command, needs_database=True)


async def run_import(settings: Settings, *, path: Path, fmt: ImportFormat) -> ImportReport:
    """Import one file into the configured database, in its own transaction."""
    from dicomgate.db import create_engine, create_sessionmaker, session_scope
    from dicomgate.patients.service import import_patients

    content = await asyncio.to_thread(path.read_bytes)
    engine = create_engine(settings.database_url)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            return await import_patients(session, content=content, fmt=fmt)
    finally:
        await engine.dispose()


def format_report(report: ImportReport) -> str:
    """The report as a person reads it on a terminal."""
    lines = [
        f"{report.rows} {'row' if report.rows == 1 else 'rows'} read ({report.format}): "
        f"{report.inserted} inserted, "
        f"{report.updated} updated, {report.rejected} rejected"
    ]
    for row in report.rejected_rows:
        lines.append(f"  row {row.row} (patient_id {row.patient_id!r}): {row.error}")
    return "\n".join(lines)


def import_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run the import; 0 when every row was stored, 1 when any was rejected, 2 on failure."""
    path: Path = args.file
    try:
        fmt: ImportFormat = args.format or detect_format(filename=path.name, content_type=None)
        if not path.is_file():
            print(f"error: {path} is not a file", file=sys.stderr)
            return 2
        report = asyncio.run(run_import(settings, path=path, fmt=fmt))
    except DicomgateError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    print(format_report(report))
    return 1 if report.rejected else 0
