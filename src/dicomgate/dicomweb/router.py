"""DICOMweb STOW-RS routes: thin — check the media type, spool the parts, call the service.

As on the upload routes, the body is not a FastAPI parameter (FastAPI would read it whole
first): ``kit.spool`` streams the multipart/related parts to capped temp files, and the
request body is declared in ``openapi_extra``.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from dicomgate.audit.context import audit_notes
from dicomgate.dependencies import RuntimeDep
from dicomgate.dicomweb import service
from dicomgate.dicomweb.reader import service_url
from dicomgate.dicomweb.schemas import STORE_RESPONSES, DicomJsonResponse
from dicomgate.errors import (
    ORTHANC_ERRORS,
    BadRequest,
    DicomgateError,
    InsufficientStorage,
    NotAcceptable,
    UnsupportedMediaType,
    UploadTooLarge,
    error_responses,
)
from dicomgate.identity.service import IdentityGuard
from dicomgate.kit.spool import RELATED, spool_request
from dicomgate.runtime import Runtime

router = APIRouter(tags=["dicomweb"])

STORE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            'multipart/related; type="application/dicom" (the type parameter quoted or not): '
            "one DICOM Part 10 file per part, each with Content-Type: application/dicom."
        ),
        "content": {
            RELATED: {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "The parts: DICOM Part 10 files.",
                        }
                    },
                },
                "encoding": {"file": {"contentType": "application/dicom"}},
            }
        },
    }
}

STORE_DESCRIPTION = """\
DICOMweb Store Transaction (STOW-RS, PS3.18 §10.5). Every part runs the upload routes' ingest:
checked, transcoded losslessly to HTJ2K (verified bit-exact), stored in Orthanc. No patient
stamping: the instances keep their own identity.

- **200** every instance stored; **202** some failed (Failed SOP Sequence) or were stored with a
  warning; **409** none stored. The body is a Store Instances Response Module (PS3.18 Annex I)
  in DICOM JSON. Sending the identical instance again stores it once and reports it as stored.
- One SOP Instance UID, one patient: an instance whose SOP Instance UID Orthanc already holds
  under another Patient ID fails with `0xA778` (42872, dcm4chee-arc's "conflicting Patient ID
  not accepted"); one already stored with other pixels or attributes, in another study or
  series, or being stored right now by another upload, fails with `0x0111` (273, "Duplicate
  SOP Instance"). Moving images between patients is a separate administrative action.
- Failure Reason (0008,1197): `0xC000` (49152) not DICOM Part 10, corrupt, or a part whose
  Content-Type is not application/dicom (such parts have empty Referenced SOP Class/Instance
  UIDs when they cannot be read); `0xA700` (42752) over the pixel cap; `0xC409` (50185) the
  instance is not of the study in the URL (dcm4chee-arc's code; PS3.18 defines none);
  `0x0110` (272) any other processing failure.
- Warning Reason (0008,1196) `0xB000` (45056): only in lossy mode (`DICOMGATE_LOSSY_QUALITY`),
  where the stored instance has a new SOP Instance UID (the item references it; its Original
  Attributes Sequence holds the UID sent). Lossless transcoding changes only the transfer
  syntax, which is no coercion of data elements, so it warrants no warning.
- Retrieve URL (0008,1190): each stored item names its instance's WADO-RS URL; the top level
  names the study when every stored instance is of one study (else it is empty).
- 406 when the Accept header allows neither application/dicom+json nor application/json
  (the answer is never XML).
- 415 for any other media type (application/dicom+json / +xml metadata-and-bulk-data STOW is
  not supported); 400 for a malformed body or one without parts; 413 when a part passes
  `DICOMGATE_MAX_UPLOAD_BYTES`, the request `DICOMGATE_MAX_REQUEST_BYTES` or the parts
  `DICOMGATE_MAX_FILES` (nothing stored); 507 when the server's disk is full; 502/503/504 when
  Orthanc fails (retry).
"""

STORE_ERRORS: tuple[type[DicomgateError], ...] = (
    BadRequest,
    NotAcceptable,
    UnsupportedMediaType,
    UploadTooLarge,
    InsufficientStorage,
    *ORTHANC_ERRORS,
)


def _route_options() -> dict[str, Any]:
    """What both STOW routes declare (fresh copies: FastAPI may edit what it is given)."""
    return copy.deepcopy(
        {
            "response_class": DicomJsonResponse,
            "description": STORE_DESCRIPTION,
            "responses": {**STORE_RESPONSES, **error_responses(*STORE_ERRORS)},
            "openapi_extra": STORE_BODY,
        }
    )


async def _store(request: Request, runtime: Runtime, study_instance_uid: str | None) -> Response:
    service.check_accept(request.headers.get("accept"))
    service.check_store_media_type(request.headers.get("content-type"))
    settings = runtime.settings
    async with spool_request(request, settings, media_type=RELATED) as form:
        report = await service.store_instances(
            orthanc=runtime.orthanc,
            pool=runtime.pool,
            settings=settings,
            guard=IdentityGuard(
                orthanc=runtime.orthanc, pool=runtime.pool, sessions=runtime.sessions
            ),
            notes=audit_notes(request),
            parts=form.files,
            study_instance_uid=study_instance_uid,
            service_url=service_url(request, settings),
            sessions=runtime.sessions,
        )
    return DicomJsonResponse(report.to_dicom_json(), status_code=report.status_code)


@router.post(
    "/dicomweb/studies",
    summary="STOW-RS: store DICOM instances (transcoded losslessly to HTJ2K)",
    operation_id="storeInstances",
    **_route_options(),
)
async def store_instances(request: Request, runtime: RuntimeDep) -> Response:
    """Instances of any studies."""
    return await _store(request, runtime, None)


@router.post(
    "/dicomweb/studies/{study_instance_uid}",
    summary="STOW-RS: store DICOM instances of one study (others are refused)",
    operation_id="storeStudyInstances",
    **_route_options(),
)
async def store_study_instances(
    study_instance_uid: str, request: Request, runtime: RuntimeDep
) -> Response:
    """Instances of the study in the URL; an instance of another study fails (0xC409)."""
    return await _store(request, runtime, service.check_study_uid(study_instance_uid))
