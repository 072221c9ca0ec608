"""Queries over the ``patients`` table; they only ``flush``, the caller's scope commits."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from dicomgate.patients.models import Patient

_IN_CHUNK = 500  # bound the IN (...) list: SQLite allows at most 32766 parameters


async def get_by_patient_id(session: AsyncSession, *, patient_id: str) -> Patient | None:
    """The patient with this Patient ID, or None."""
    result = await session.execute(select(Patient).where(Patient.patient_id == patient_id))
    return result.scalar_one_or_none()


async def get_many(session: AsyncSession, *, patient_ids: Iterable[str]) -> dict[str, Patient]:
    """The patients among these IDs that exist, by Patient ID."""
    ids = list(dict.fromkeys(patient_ids))
    found: dict[str, Patient] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        result = await session.execute(select(Patient).where(Patient.patient_id.in_(chunk)))
        found.update((p.patient_id, p) for p in result.scalars())
    return found


def _matches(search: str) -> ColumnElement[bool]:
    """Partial, case-insensitive match on ID, family, given and ``Family^Given``."""
    full_name = Patient.family_name + "^" + Patient.given_name
    return or_(
        *(
            column.icontains(search, autoescape=True)
            for column in (Patient.patient_id, Patient.family_name, Patient.given_name, full_name)
        )
    )


async def search(
    session: AsyncSession, *, search: str | None, limit: int
) -> tuple[Sequence[Patient], int]:
    """Matching patients ordered by family, given name and ID (at most ``limit``) and the total."""
    query = select(Patient)
    count = select(func.count()).select_from(Patient)
    if search:
        query = query.where(_matches(search))
        count = count.where(_matches(search))
    # lower(): the same order on SQLite (binary collation) and PostgreSQL (locale collation).
    query = query.order_by(
        func.lower(Patient.family_name), func.lower(Patient.given_name), Patient.patient_id
    )
    total = (await session.execute(count)).scalar_one()
    rows = (await session.execute(query.limit(limit))).scalars().all()
    return rows, total


async def add(session: AsyncSession, patient: Patient) -> Patient:
    """Insert a new patient (flushed, so constraint violations surface here)."""
    session.add(patient)
    await session.flush()
    return patient


async def add_all(session: AsyncSession, patients: Iterable[Patient]) -> None:
    """Insert or update many patients in one flush."""
    session.add_all(patients)
    await session.flush()


async def delete(session: AsyncSession, patient: Patient) -> None:
    """Remove a patient."""
    await session.delete(patient)
    await session.flush()
