"""Upload routes: thin — stream the multipart body to capped temp files, call the service.

The body is not declared as FastAPI ``File``/``Form`` parameters on purpose: FastAPI would parse
the whole form (without a per-file size limit) before the handler runs. The multipart schema is
declared in ``openapi_extra`` so the front end still sees the fields.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status

from dicomgate.dependencies import RuntimeDep, SessionDep
from dicomgate.errors import (
    ORTHANC_ERRORS,
    BadRequest,
    DicomgateError,
    ImageTooLarge,
    InsufficientStorage,
    InvalidCodestream,
    InvalidDicom,
    NotDicom,
    PatientNotFound,
    UnprocessableInput,
    UploadTooLarge,
    WorkerFailure,
    WorkerMemoryExceeded,
    WorkerTimeout,
    error_responses,
)
from dicomgate.ingest import service
from dicomgate.ingest.idempotency import UPLOAD_ID_MAX, UPLOAD_ID_MIN, UPLOAD_ID_PATTERN
from dicomgate.ingest.schemas import FolderUploadResult, MultiUploadResult, UploadResult
from dicomgate.kit.spool import spool_request

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
    PatientNotFound,
    UnprocessableInput,
    UploadTooLarge,
    ImageTooLarge,
    InvalidCodestream,
    InsufficientStorage,
    WorkerFailure,
    WorkerMemoryExceeded,
    WorkerTimeout,
    *ORTHANC_ERRORS,
)


@router.post(
    "/api/ris/upload/dicom/",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadResult | MultiUploadResult,
    summary="Upload DICOM files: validate, stamp the patient, transcode to HTJ2K, store",
    operation_id="uploadDicom",
    responses=error_responses(*UPLOAD_ERRORS),
    openapi_extra=SINGLE_UPLOAD_BODY,
)
async def upload_dicom(
    request: Request, runtime: RuntimeDep, session: SessionDep
) -> UploadResult | MultiUploadResult:
    """One file → its result; several files → one result per file plus the failures."""
    settings = runtime.settings
    async with spool_request(request, settings) as form:
        patient_id = (form.value("patient_id") or "").strip() or None
        return await service.upload_files(
            session=session,
            orthanc=runtime.orthanc,
            pool=runtime.pool,
            settings=settings,
            files=form.files_of("file", "files"),
            patient_id=patient_id,
            sessions=runtime.sessions,
        )


@router.post(
    "/api/orthanc/upload-patient/",
    status_code=status.HTTP_201_CREATED,
    response_model=FolderUploadResult,
    summary="Upload a folder of series as one new study of a cached patient",
    operation_id="uploadPatientFolder",
    responses=error_responses(*UPLOAD_ERRORS),
    openapi_extra=FOLDER_UPLOAD_BODY,
)
async def upload_patient_folder(
    request: Request, runtime: RuntimeDep, session: SessionDep
) -> FolderUploadResult:
    """All files become one study; each distinct series_path one series; zips are expanded."""
    settings = runtime.settings
    async with spool_request(request, settings) as form:
        return await service.upload_folder(
            session=session,
            orthanc=runtime.orthanc,
            pool=runtime.pool,
            settings=settings,
            form=form,
            sessions=runtime.sessions,
        )
