"""``/api/ris/patients/``: search, read, upsert, delete and bulk-import the patient cache."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, Request, Response, UploadFile, status

from dicomgate.audit.context import audit_notes, note_touched
from dicomgate.dependencies import SessionDep
from dicomgate.errors import (
    Conflict,
    InvalidImportFile,
    InvalidPatient,
    PatientRecordNotFound,
    UnsupportedImportFormat,
    UploadTooLarge,
    error_responses,
)
from dicomgate.patients import service
from dicomgate.patients.importer import MAX_IMPORT_BYTES, detect_format
from dicomgate.patients.schemas import (
    ImportReport,
    PatientDeleteResponse,
    PatientFields,
    PatientResponse,
    PatientSearchResponse,
    PatientUpsertResponse,
)

router = APIRouter(prefix="/api/ris/patients", tags=["patients"])


@router.get(
    "/",
    response_model=PatientSearchResponse,
    summary="Search the patient cache by ID or name",
    operation_id="searchPatients",
    responses=error_responses(InvalidPatient),
)
async def search_patients(
    request: Request,
    session: SessionDep,
    search: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Partial, case-insensitive: ID, family, given, or Family^Given.",
        ),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=service.SEARCH_LIMIT_MAX, description="Most patients returned.")
    ] = 50,
) -> PatientSearchResponse:
    patients, total = await service.search_patients(session, search=search, limit=limit)
    note_touched(request, patient_ids=[p.patient_id for p in patients])
    return PatientSearchResponse(patients=[service.summary(p) for p in patients], total=total)


@router.post(
    "/import/",
    response_model=ImportReport,
    summary="Bulk upsert patients from a CSV or JSON file",
    operation_id="importPatients",
    responses=error_responses(InvalidImportFile, UploadTooLarge, UnsupportedImportFormat, Conflict),
)
async def import_patients(
    request: Request,
    session: SessionDep,
    file: Annotated[
        UploadFile,
        File(
            description="CSV (header: patient_id, family_name, given_name, birth_date, "
            "gender) or JSON (a list of such objects)."
        ),
    ],
) -> ImportReport:
    fmt = detect_format(filename=file.filename, content_type=file.content_type)
    content = await file.read(MAX_IMPORT_BYTES + 1)
    if len(content) > MAX_IMPORT_BYTES:
        raise UploadTooLarge(f"The import file is larger than {MAX_IMPORT_BYTES} bytes")
    return await service.import_patients(
        session, content=content, fmt=fmt, notes=audit_notes(request)
    )


@router.get(
    "/{patient_id:path}/",
    response_model=PatientResponse,
    summary="One patient of the cache",
    operation_id="getPatient",
    responses=error_responses(PatientRecordNotFound),
)
async def get_patient(request: Request, session: SessionDep, patient_id: str) -> PatientResponse:
    note_touched(request, patient_ids=[patient_id])
    patient = await service.require_patient(session, patient_id=patient_id)
    return PatientResponse(patient=service.detail(patient))


@router.put(
    "/{patient_id:path}/",
    response_model=PatientUpsertResponse,
    status_code=status.HTTP_200_OK,
    summary="Create (201) or replace (200) a patient",
    operation_id="upsertPatient",
    responses={
        201: {"model": PatientUpsertResponse, "description": "Created"},
        **error_responses(InvalidPatient, Conflict),
    },
)
async def upsert_patient(
    request: Request,
    session: SessionDep,
    patient_id: str,
    fields: PatientFields,
    response: Response,
) -> PatientUpsertResponse:
    note_touched(request, patient_ids=[patient_id])
    patient, created = await service.upsert_patient(session, patient_id=patient_id, fields=fields)
    if created:
        response.status_code = status.HTTP_201_CREATED
    return PatientUpsertResponse(created=created, patient=service.detail(patient))


@router.delete(
    "/{patient_id:path}/",
    response_model=PatientDeleteResponse,
    summary="Remove a patient from the cache",
    operation_id="deletePatient",
    responses=error_responses(PatientRecordNotFound),
)
async def delete_patient(
    request: Request, session: SessionDep, patient_id: str
) -> PatientDeleteResponse:
    note_touched(request, patient_ids=[patient_id])
    await service.delete_patient(session, patient_id=patient_id)
    return PatientDeleteResponse(deleted=patient_id)
