"""Helpers for the compression rules tests: a real C-STORE SCU, rules files, waiting for an
outcome, and what the database says the rules did."""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import httpx
from pydicom.dataset import Dataset
from pynetdicom import AE
from sqlalchemy import select

from dicomgate.conversions.models import ConversionJob, ConversionOutcome
from dicomgate.db import create_engine, create_sessionmaker, session_scope
from dicomgate.migrations import upgrade_database
from dicomgate.settings import Settings
from tests.builders import make_dataset
from tests.orthanc_process import OrthancProcess

ORTHANC_AET = "ORTHANC"
T = TypeVar("T")


def cstore(orthanc: OrthancProcess, datasets: Sequence[Dataset], *, calling_aet: str) -> None:
    """Send datasets to Orthanc's DICOM port in one association, as a modality would."""
    ae = AE(ae_title=calling_aet)
    for context in {(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID) for ds in datasets}:
        ae.add_requested_context(*context)
    assoc = ae.associate("127.0.0.1", orthanc.dicom_port, ae_title=ORTHANC_AET)
    assert assoc.is_established, "Orthanc refused the association"
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            assert status is not None and status.Status == 0x0000, f"C-STORE failed: {status}"
    finally:
        assoc.release()


def series_of(count: int, *, modality: str = "CT", rows: int = 32, **tags: object) -> list[Dataset]:
    """``count`` instances of one new series of one new study."""
    first = make_dataset(rows=rows, columns=rows, modality=modality, **tags)
    out = [first]
    for number in range(2, count + 1):
        out.append(
            make_dataset(
                rows=rows,
                columns=rows,
                modality=modality,
                study_uid=first.StudyInstanceUID,
                series_uid=first.SeriesInstanceUID,
                instance_number=number,
                **tags,
            )
        )
    return out


async def rules_settings(
    orthanc: OrthancProcess,
    folder: Path,
    rules: str,
    *,
    database_url: str | None = None,
    **more: object,
) -> Settings:
    """Settings with this rules file, a migrated database (by default a SQLite file of its own)
    and a quick follower."""
    path = folder / "rules.toml"
    path.write_text(rules)
    values: dict[str, object] = {
        "orthanc_url": orthanc.url,
        "database_url": database_url or f"sqlite+aiosqlite:///{folder / 'rules.db'}",
        "workers": 2,
        "orthanc_timeout": 30,
        "journal_dir": folder / "journal",
        "rules_file": path,
        "rules_poll_interval": 0.2,
        **more,
    }
    settings = Settings.model_validate(values)
    await asyncio.to_thread(upgrade_database, settings)  # Alembic runs its own event loop
    return settings


async def eventually(
    check: Callable[[], Awaitable[T | None]], *, what: str, within: float = 90.0
) -> T:
    """Poll ``check`` until it returns a value (not None); fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        found = await check()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.2)


async def rule_jobs(database_url: str) -> list[ConversionJob]:
    """Every job a rule created, oldest first."""
    engine = create_engine(database_url)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            query = (
                select(ConversionJob)
                .where(ConversionJob.origin.like("rule:%"))
                .order_by(ConversionJob.id)
            )
            return list((await session.scalars(query)).all())
    finally:
        await engine.dispose()


async def converted_outcomes(database_url: str) -> list[str]:
    """The Orthanc IDs of every instance a rule's job converted (once per conversion)."""
    engine = create_engine(database_url)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            query = (
                select(ConversionOutcome.orthanc_id)
                .join(ConversionJob, ConversionJob.id == ConversionOutcome.job_id)
                .where(
                    ConversionJob.origin.like("rule:%"), ConversionOutcome.outcome == "converted"
                )
            )
            return list((await session.scalars(query)).all())
    finally:
        await engine.dispose()


def transfer_syntaxes(orthanc: OrthancProcess, series_uid: str) -> dict[str, str]:
    """SOP Instance UID → the transfer syntax of the file Orthanc serves, for one series."""
    with httpx.Client(base_url=orthanc.url, timeout=30) as client:
        found = client.post(
            "/tools/find",
            json={"Level": "Instance", "Query": {"SeriesInstanceUID": series_uid}, "Expand": True},
        ).json()
        return {
            item["MainDicomTags"]["SOPInstanceUID"]: client.get(
                f"/instances/{item['ID']}/header", params={"simplify": ""}
            ).json()["TransferSyntaxUID"]
            for item in found
        }


def latest_change(orthanc: OrthancProcess) -> int:
    """The sequence number of Orthanc's latest change."""
    return int(httpx.get(f"{orthanc.url}/changes", params={"last": ""}, timeout=30).json()["Last"])


def restabilised(orthanc: OrthancProcess, series_ids: list[str]) -> dict[str, int] | None:
    """Series ID → seq of the StableSeries change Orthanc logged after the last of its
    instances was stored again (a replacement re-posts each one); None while one has none yet.

    Tied to each series' own instances, not to a job's end: a job converting several series
    ends after the first of them has already become stable again."""
    page = httpx.get(f"{orthanc.url}/changes", params={"since": 0, "limit": 100000}, timeout=30)
    changes = page.json()["Changes"]
    stored = {c["ID"]: c["Seq"] for c in changes if c["ChangeType"] == "NewInstance"}
    found: dict[str, int] = {}
    for series_id in series_ids:
        instances = httpx.get(f"{orthanc.url}/series/{series_id}", timeout=30).json()["Instances"]
        last_stored = max(stored[instance] for instance in instances)
        marks = [
            c["Seq"]
            for c in changes
            if c["ChangeType"] == "StableSeries" and c["ID"] == series_id and c["Seq"] > last_stored
        ]
        if not marks:
            return None
        found[series_id] = min(marks)
    return found


def stable_marks(orthanc: OrthancProcess) -> dict[str, list[tuple[int, datetime.datetime]]]:
    """Series ID → (seq, date) of each StableSeries change Orthanc logged for it."""
    page = httpx.get(f"{orthanc.url}/changes", params={"since": 0, "limit": 100000}, timeout=30)
    marks: dict[str, list[tuple[int, datetime.datetime]]] = {}
    for change in page.json()["Changes"]:
        if change["ChangeType"] == "StableSeries":
            date = datetime.datetime.strptime(change["Date"], "%Y%m%dT%H%M%S")
            marks.setdefault(change["ID"], []).append(
                (change["Seq"], date.replace(tzinfo=datetime.UTC))
            )
    return marks
