"""Writes to ``stored_instances``: an upload stored a new instance, a conversion replaced one,
dicomgate deleted one (or a parent). One upsert or delete, in the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, cast

from sqlalchemy import Table, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dicomgate.orthanc_models import Level
from dicomgate.statistics.models import StoredInstance

PARENT_COLUMNS: dict[Level, Any] = {
    "patients": StoredInstance.patient_orthanc_id,
    "studies": StoredInstance.study_orthanc_id,
    "series": StoredInstance.series_orthanc_id,
    "instances": StoredInstance.orthanc_id,
}


@dataclass(frozen=True)
class StoredRecord:
    """What was written: where in Orthanc, which modality and syntax, bytes before and after."""

    orthanc_id: str
    patient_orthanc_id: str
    study_orthanc_id: str
    series_orthanc_id: str
    modality: str | None
    transfer_syntax: str
    size_before: int
    size_after: int
    file_uuid: str | None = None  # verified: Orthanc's file has the bytes written

    def row(self) -> dict[str, Any]:
        return {
            "orthanc_id": self.orthanc_id,
            "patient_orthanc_id": self.patient_orthanc_id,
            "study_orthanc_id": self.study_orthanc_id,
            "series_orthanc_id": self.series_orthanc_id,
            "modality": (self.modality or None) and self.modality[:16],
            "transfer_syntax": self.transfer_syntax[:64],
            "original_size": self.size_before,
            "stored_size": self.size_after,
            "file_uuid": self.file_uuid,
        }


_ROW_KEYS = (
    "orthanc_id",
    "patient_orthanc_id",
    "study_orthanc_id",
    "series_orthanc_id",
    "modality",
    "transfer_syntax",
    "original_size",
    "stored_size",
    "file_uuid",
)


@cache
def _upserts(dialect: str) -> tuple[Any, Any]:
    """The two upserts (ingested, converted), built once per dialect: both have ON CONFLICT
    (PostgreSQL and SQLite ≥ 3.24 alike); the values come as parameters at each execution."""
    from sqlalchemy.dialects import postgresql, sqlite

    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = cast(Table, StoredInstance.__table__)
    ingested = insert(table)
    ingested = ingested.on_conflict_do_update(
        index_elements=["orthanc_id"],
        set_={
            **{
                key: ingested.excluded[key]
                for key in (*_ROW_KEYS, "ingest_saved", "conversion_saved")
                if key != "orthanc_id"
            },
            "updated_at": func.now(),
        },
    )
    converted = insert(table)
    excluded = converted.excluded
    converted = converted.on_conflict_do_update(
        index_elements=["orthanc_id"],
        set_={
            "patient_orthanc_id": excluded.patient_orthanc_id,
            "study_orthanc_id": excluded.study_orthanc_id,
            "series_orthanc_id": excluded.series_orthanc_id,
            "modality": func.coalesce(table.c.modality, excluded.modality),
            "transfer_syntax": excluded.transfer_syntax,
            "file_uuid": excluded.file_uuid,
            "stored_size": excluded.stored_size,
            "conversion_saved": excluded.conversion_saved,
            "updated_at": func.now(),
        },
    )
    return ingested, converted


def _dialect(session: AsyncSession) -> str:
    bind = session.bind
    return bind.dialect.name if bind is not None else "sqlite"


async def record_ingested(session: AsyncSession, record: StoredRecord) -> None:
    """An upload stored a new instance (Orthanc answered ``Success``): a fresh row."""
    values = {
        **record.row(),
        "ingest_saved": record.size_before - record.size_after,
        "conversion_saved": None,
    }
    await session.execute(_upserts(_dialect(session))[0], values)


async def record_converted(session: AsyncSession, record: StoredRecord) -> None:
    """A conversion replaced an instance: its new syntax and size; what it was first stays."""
    values = {**record.row(), "conversion_saved": record.size_before - record.size_after}
    await session.execute(_upserts(_dialect(session))[1], values)


async def forget(session: AsyncSession, *, level: Level, orthanc_id: str) -> int:
    """dicomgate deleted a resource: drop the rows of every instance it held; how many."""
    result = await session.execute(
        delete(StoredInstance).where(PARENT_COLUMNS[level] == orthanc_id)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def recorded_syntaxes(session: AsyncSession, files: dict[str, str]) -> dict[str, str]:
    """The recorded transfer syntax of each file, by Orthanc ID (``files``: Orthanc ID → the
    attachment UUID Orthanc holds now); only where the row names that very file."""
    out: dict[str, str] = {}
    ids = list(files)
    for start in range(0, len(ids), 500):
        rows = await session.execute(
            select(
                StoredInstance.orthanc_id, StoredInstance.file_uuid, StoredInstance.transfer_syntax
            ).where(StoredInstance.orthanc_id.in_(ids[start : start + 500]))
        )
        for orthanc_id, file_uuid, syntax in rows:
            if file_uuid is not None and file_uuid == files.get(orthanc_id) and syntax:
                out[orthanc_id] = syntax
    return out
