"""Upload routes: thin — stream the multipart body to capped temp files, call the service.

The body is not declared as FastAPI ``File``/``Form`` parameters on purpose: FastAPI would parse
the whole form (without a per-file size limit) before the handler runs. The multipart schema is
declared in ``openapi_extra`` so the front end still sees the fields.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status

from dicomgate.audit.context import audit_notes
from dicomgate.dependencies import RuntimeDep, SessionDep
from dicomgate.errors import (
    ORTHANC_ERRORS,
    BadRequest,
    ContentConflict,
    DicomgateError,
    IdentityConflict,
    ImageTooLarge,
    InstanceBusy,
    InsufficientStorage,
    InvalidCodestream,
    InvalidDicom,
    NotDicom,
    PatientConflict,
    PatientNotFound,
    UnprocessableInput,
    UploadTooLarge,
    WorkerFailure,
    WorkerMemoryExceeded,
    WorkerTimeout,
    error_responses,
)
from dicomgate.identity.service import IdentityGuard
from dicomgate.ingest import service
from dicomgate.ingest.idempotency import UPLOAD_ID_MAX, UPLOAD_ID_MIN, UPLOAD_ID_PATTERN
from dicomgate.ingest.schemas import FolderUploadResult, MultiUploadResult, UploadResult
from dicomgate.kit.spool import spool_request
from dicomgate.runtime import Runtime

router = APIRouter(tags=["ingest"])

_BINARY = {"type": "string", "format": "binary"}


def _multipart(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": properties, "required": required}
                }
            },
        }
    }


SINGLE_UPLOAD_BODY = _multipart(
    {
        "file": {
            "type": "array",
            "items": _BINARY,
            "description": "One DICOM file (repeat the field, or use 'files', for several).",
        },
        "files": {"type": "array", "items": _BINARY, "description": "More DICOM files."},
        "patient_id": {
            "type": "string",
            "description": "Stamp this cached patient's demographics (unknown → 422).",
        },
    },
    [],
)

FOLDER_UPLOAD_BODY = _multipart(
    {
        "patient_id": {"type": "string", "description": "A patient of the patient cache."},
        "study_description": {"type": "string"},
        "files": {
            "type": "array",
            "items": _BINARY,
            "description": "DICOM files; a .zip is expanded (its folders become series).",
        },
        "series_path": {
            "type": "array",
            "items": {"type": "string"},
            "description": "One folder path per file (a label); none → one series.",
        },
        "upload_id": {
            "type": "string",
            "minLength": UPLOAD_ID_MIN,
            "maxLength": UPLOAD_ID_MAX,
            "pattern": UPLOAD_ID_PATTERN,
            "description": (
                "Idempotency key (e.g. a UUID), the same on every retry of this upload: the "
                "Study/Series Instance UIDs are derived from it and the patient, so a retry "
                "stores into the same study (files already stored answer AlreadyStored) instead "
                "of a duplicate. The same key with another patient_id makes an unrelated study. "
                "Without it, every request makes a new study. Invalid → 422."
            ),
        },
    },
    ["patient_id", "files"],
)

UPLOAD_ERRORS: tuple[type[DicomgateError], ...] = (
    BadRequest,
    InvalidDicom,
    NotDicom,
    PatientConflict,
    PatientNotFound,
    UnprocessableInput,
    UploadTooLarge,
    ImageTooLarge,
    InvalidCodestream,
    InsufficientStorage,
    WorkerFailure,
    WorkerMemoryExceeded,
    WorkerTimeout,
    IdentityConflict,
    PatientConflict,
    ContentConflict,
    InstanceBusy,
    *ORTHANC_ERRORS,
)


def _guard(runtime: Runtime) -> IdentityGuard:
    return IdentityGuard(orthanc=runtime.orthanc, pool=runtime.pool, sessions=runtime.sessions)


def upload_responses(partial: type, summary: str) -> dict[int | str, Any]:
    """201 / 202 / errors, as STOW-RS answers (PS3.18 §10.5.3): all, some, none stored. (The
    201 body is the route's response_model.)"""
    return {
        201: {"description": f"Every file was stored. {summary}"},
        202: {
            "model": partial,
            "description": "Some files were stored, others not: the answer lists each stored "
            "file and each failure with its reason.",
        },
        **error_responses(*UPLOAD_ERRORS),
    }


IDENTITY_RULES = (
    "One SOP Instance UID, one patient: a file whose SOP Instance UID Orthanc already holds "
    "under another Patient ID (after stamping) is refused (PatientConflict, 409), as is one "
    "stored with other pixels or attributes or in another study or series (ContentConflict), "
    "or being stored right now by another upload (InstanceBusy); nothing of it is stored. The "
    "identical file again is stored once: its result says 'Already stored' (Status "
    "AlreadyStored)."
)


@router.post(
    "/api/ris/upload/dicom/",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadResult | MultiUploadResult,
    summary="Upload DICOM files: validate, stamp the patient, transcode to HTJ2K, store",
    description="One file → its result (or its error). Several → 201 when all were stored, "
    "202 with the per-file list when some were, 409 when every file was refused for its "
    "identity and 422 otherwise when none was.\n\n" + IDENTITY_RULES,
    operation_id="uploadDicom",
    responses=upload_responses(
        MultiUploadResult, "One file: its result; several: one result per file."
    ),
    openapi_extra=SINGLE_UPLOAD_BODY,
)
async def upload_dicom(
    request: Request, response: Response, runtime: RuntimeDep, session: SessionDep
) -> UploadResult | MultiUploadResult:
    """One file → its result; several files → one result per file plus the failures."""
    settings = runtime.settings
    async with spool_request(request, settings) as form:
        patient_id = (form.value("patient_id") or "").strip() or None
        result = await service.upload_files(
            session=session,
            orthanc=runtime.orthanc,
            pool=runtime.pool,
            settings=settings,
            guard=_guard(runtime),
            notes=audit_notes(request),
            files=form.files_of("file", "files"),
            patient_id=patient_id,
            sessions=runtime.sessions,
        )
    if isinstance(result, MultiUploadResult) and result.failed_files:
        response.status_code = status.HTTP_202_ACCEPTED
    return result


@router.post(
    "/api/orthanc/upload-patient/",
    status_code=status.HTTP_201_CREATED,
    response_model=FolderUploadResult,
    summary="Upload a folder of series as one new study of a cached patient",
    description="201 when every file was stored, 202 when some were (failedFiles lists the "
    "others), 409 when every file was refused for its identity and 422 otherwise when none "
    "was. Every file gets new Study/Series/SOP Instance UIDs (derived from upload_id when "
    "given), the replaced ones kept in its Original Attributes Sequence (PS3.3 "
    "C.12.1.1.9).\n\n" + IDENTITY_RULES,
    operation_id="uploadPatientFolder",
    responses=upload_responses(FolderUploadResult, "failedFiles is empty."),
    openapi_extra=FOLDER_UPLOAD_BODY,
)
async def upload_patient_folder(
    request: Request, response: Response, runtime: RuntimeDep, session: SessionDep
) -> FolderUploadResult:
    """All files become one study; each distinct series_path one series; zips are expanded."""
    settings = runtime.settings
    async with spool_request(request, settings) as form:
        result = await service.upload_folder(
            session=session,
            orthanc=runtime.orthanc,
            pool=runtime.pool,
            settings=settings,
            guard=_guard(runtime),
            notes=audit_notes(request),
            form=form,
            sessions=runtime.sessions,
        )
    if result.failedFiles:
        response.status_code = status.HTTP_202_ACCEPTED
    return result
