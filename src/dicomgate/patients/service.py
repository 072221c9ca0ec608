"""Patient cache logic shared by the API, the CLI and the ingest service."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from anyio import to_thread
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dicomgate.audit.context import AuditNotes
from dicomgate.errors import Conflict, InvalidPatient, PatientRecordNotFound
from dicomgate.patients import repository
from dicomgate.patients.importer import ImportFormat, read_rows
from dicomgate.patients.models import Patient
from dicomgate.patients.schemas import (
    ImportReport,
    PatientDetail,
    PatientFields,
    PatientRecord,
    PatientSummary,
    RejectedRow,
    check_patient_id,
)

SEARCH_LIMIT_MAX = 500


def describe_validation_error(exc: ValidationError) -> str:
    """One readable line from pydantic's errors: ``field: message; …``."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def validated_patient_id(patient_id: str) -> str:
    """The Patient ID checked against DICOM LO rules, or ``InvalidPatient`` (422)."""
    try:
        return check_patient_id(patient_id)
    except ValueError as exc:
        raise InvalidPatient(str(exc)) from None


def _could_be_cached(patient_id: str) -> bool:
    """False for an ID the cache never accepts (control characters, too long …): looking it up
    would only hand the database bytes it may refuse (PostgreSQL refuses NUL in text)."""
    try:
        check_patient_id(patient_id)
    except ValueError:
        return False
    return True


async def get_patient(session: AsyncSession, *, patient_id: str) -> Patient | None:
    """The cached patient with this Patient ID, or None (used by ingest to stamp demographics)."""
    if not _could_be_cached(patient_id):
        return None
    return await repository.get_by_patient_id(session, patient_id=patient_id)


async def require_patient(session: AsyncSession, *, patient_id: str) -> Patient:
    """The cached patient, or ``PatientRecordNotFound`` (404)."""
    patient = await get_patient(session, patient_id=patient_id)
    if patient is None:
        raise PatientRecordNotFound(f"No patient with patient_id {patient_id!r}")
    return patient


async def search_patients(
    session: AsyncSession, *, search: str | None, limit: int = 50
) -> tuple[Sequence[Patient], int]:
    """Patients matching ``search`` (partial, case-insensitive), ordered; and the match count."""
    term = (search or "").strip() or None
    return await repository.search(session, search=term, limit=limit)


def _apply(patient: Patient, record: PatientRecord) -> None:
    patient.family_name = record.family_name
    patient.given_name = record.given_name
    patient.birth_date = record.birth_date
    patient.gender = record.gender


def _new_patient(record: PatientRecord) -> Patient:
    patient = Patient(patient_id=record.patient_id)
    _apply(patient, record)
    return patient


async def upsert_patient(
    session: AsyncSession, *, patient_id: str, fields: PatientFields
) -> tuple[Patient, bool]:
    """Create or replace one patient; returns it and whether it was created."""
    patient_id = validated_patient_id(patient_id)
    if fields.patient_id is not None and fields.patient_id != patient_id:
        raise InvalidPatient(
            f"patient_id in the body ({fields.patient_id!r}) differs from the path ({patient_id!r})"
        )
    record = PatientRecord.model_validate({**fields.model_dump(), "patient_id": patient_id})
    patient = await repository.get_by_patient_id(session, patient_id=patient_id)
    created = patient is None
    try:
        if patient is None:
            patient = await repository.add(session, _new_patient(record))
        else:
            _apply(patient, record)
            await session.flush()
    except IntegrityError:
        raise Conflict(
            f"patient {patient_id!r} was created concurrently by another request; retry"
        ) from None
    await session.refresh(patient)  # server-side timestamps
    return patient, created


async def delete_patient(session: AsyncSession, *, patient_id: str) -> None:
    """Remove a patient from the cache, or ``PatientRecordNotFound`` (404)."""
    patient = await require_patient(session, patient_id=patient_id)
    await repository.delete(session, patient)


def _validate_rows(
    rows: list[dict[str, Any]],
) -> tuple[list[tuple[int, PatientRecord]], list[RejectedRow]]:
    """Valid records (with their row numbers) and the rejected rows with reasons."""
    valid: list[tuple[int, PatientRecord]] = []
    rejected: list[RejectedRow] = []
    first_row: dict[str, int] = {}
    for number, raw in enumerate(rows, start=1):
        given_id = raw.get("patient_id")
        shown_id = str(given_id) if given_id is not None else None
        if "__invalid__" in raw:
            rejected.append(RejectedRow(row=number, patient_id=shown_id, error=raw["__invalid__"]))
            continue
        data = {k: v for k, v in raw.items() if k in PatientRecord.model_fields}
        if "name" in raw and "family_name" not in raw and "given_name" not in raw:
            family, _, given = str(raw["name"] or "").partition("^")
            data["family_name"], data["given_name"] = family, given
        try:
            record = PatientRecord.model_validate(data)
        except ValidationError as exc:
            rejected.append(
                RejectedRow(row=number, patient_id=shown_id, error=describe_validation_error(exc))
            )
            continue
        if record.patient_id in first_row:
            rejected.append(
                RejectedRow(
                    row=number,
                    patient_id=record.patient_id,
                    error=f"duplicate patient_id in this file (first at row "
                    f"{first_row[record.patient_id]}); not applied",
                )
            )
            continue
        first_row[record.patient_id] = number
        valid.append((number, record))
    return valid, rejected


async def import_patients(
    session: AsyncSession, *, content: bytes, fmt: ImportFormat, notes: AuditNotes | None = None
) -> ImportReport:
    """Upsert every valid record of a CSV/JSON file; invalid rows are reported, not fatal."""
    # Parsing a big file is CPU and memory work: keep it off the event loop.
    rows = await to_thread.run_sync(functools.partial(read_rows, content, fmt=fmt))
    valid, rejected = _validate_rows(rows)
    if notes is not None:
        notes.touched(patient_ids=[record.patient_id for _, record in valid])
    existing = await repository.get_many(session, patient_ids=(r.patient_id for _, r in valid))
    inserted = updated = 0
    changed: list[Patient] = []
    for _, record in valid:
        patient = existing.get(record.patient_id)
        if patient is None:
            changed.append(_new_patient(record))
            inserted += 1
        else:
            _apply(patient, record)
            changed.append(patient)
            updated += 1
    try:
        await repository.add_all(session, changed)
    except IntegrityError:
        raise Conflict(
            "another request created some of these patients while the import ran; retry"
        ) from None
    return ImportReport(
        format=fmt,
        rows=len(rows),
        inserted=inserted,
        updated=updated,
        rejected=len(rejected),
        rejected_rows=sorted(rejected, key=lambda r: r.row),
    )


def summary(patient: Patient) -> PatientSummary:
    """The search-result shape of a patient."""
    return PatientSummary(
        patient_id=patient.patient_id,
        name=patient.demographics().dicom_name,
        birth_date=patient.birth_date,
        gender=patient.gender,
    )


def detail(patient: Patient) -> PatientDetail:
    """The full shape of a patient."""
    return PatientDetail(
        **summary(patient).model_dump(),
        family_name=patient.family_name,
        given_name=patient.given_name,
        created_at=patient.created_at,
        updated_at=patient.updated_at,
    )
