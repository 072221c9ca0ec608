"""Domain errors and the one place that turns them into HTTP answers.

Every error the API can give has the seed's shape ``{"success": false, "error": "…"}`` plus the
error ``type`` (the class name), so clients can branch on it without parsing messages.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:  # the web layer is imported only where handlers are installed, so that
    # codec/ and dicom/ (worker processes, CLI) can raise these errors without FastAPI.
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)


class DicomgateError(Exception):
    """Base of every error dicomgate raises on purpose."""

    status_code: ClassVar[int] = 500
    default_message: ClassVar[str] = "Internal error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)

    @property
    def type(self) -> str:
        return type(self).__name__


# --- Bad input -------------------------------------------------------------------------------
class BadRequest(DicomgateError):
    status_code = 400
    default_message = "Bad request"


class InvalidDicom(BadRequest):
    """Parseable as DICOM, but corrupt or missing what the operation needs."""

    default_message = "The file is not valid DICOM"


class NotDicom(DicomgateError):
    status_code = 415
    default_message = "The file is not DICOM"


class NotAcceptable(DicomgateError):
    """No media type the route can answer in is allowed by the Accept header (RFC 9110 §15.5.7)."""

    status_code = 406
    default_message = "Not acceptable"


class RangeNotSatisfiable(DicomgateError):
    """No byte of the Range asked for is in the body (RFC 9110 §15.5.17); names the size."""

    status_code = 416
    default_message = "Range not satisfiable"

    def __init__(self, message: str | None = None, *, size: int = 0) -> None:
        super().__init__(message)
        self.headers = {"Content-Range": f"bytes */{size}"}


class UnsupportedMediaType(DicomgateError):
    """The request body's media type is not one the route accepts (RFC 9110 §15.5.16)."""

    status_code = 415
    default_message = "Unsupported media type"


class UnprocessableInput(DicomgateError):
    status_code = 422
    default_message = "The request cannot be processed"


class OrthancRejectedFile(UnprocessableInput):
    """Orthanc parsed an uploaded file and refused it; the file is at fault, not Orthanc."""

    default_message = "Orthanc refused the file"


class PatientNotFound(UnprocessableInput):
    default_message = "Unknown patient"


class InvalidPatient(UnprocessableInput):
    """A patient record that breaks the cache's rules (DICOM LO/PN limits, gender, dates)."""

    default_message = "Invalid patient record"


class InvalidUploadId(UnprocessableInput):
    """A folder upload's idempotency key (``upload_id``) is too short, too long or not plain."""

    default_message = "Invalid upload_id"


class UnsupportedImportFormat(DicomgateError):
    status_code = 415
    default_message = "The import file must be CSV or JSON"


class InvalidImportFile(BadRequest):
    default_message = "The import file cannot be read"


class ImageTooLarge(DicomgateError):
    """Declared pixel dimensions beyond the configured cap (decompression-bomb guard)."""

    status_code = 413
    default_message = "The image is larger than this service accepts"


class InvalidCodestream(UnprocessableInput):
    """A frame's codestream header is unreadable or disagrees with the dataset (Rows, Columns,
    Samples per Pixel, Bits Allocated): refused before any decoder sees it."""

    default_message = "The compressed pixel data does not match the image it claims to be"


class RequestHeaderTooLarge(DicomgateError):
    """The request line and headers pass ``DICOMGATE_MAX_HEADER_BYTES`` (RFC 6585 §5); answered
    by the HTTP protocol itself (``dicomgate.server``), before any route runs."""

    status_code = 431
    default_message = "The request line and headers are larger than this service accepts"


class InsufficientStorage(DicomgateError):
    """No space left on the disk dicomgate works on (the upload spool, zip expansion, worker
    output): RFC 4918 §11.5. Nothing of the request was stored."""

    status_code = 507
    default_message = "The server has no space left to work on this upload; nothing was stored"


class UploadTooLarge(DicomgateError):
    status_code = 413
    default_message = "The upload is larger than this service accepts"


# --- Callers ---------------------------------------------------------------------------------
class Unauthorized(DicomgateError):
    """No credential, or one that does not verify (RFC 6750 §3: with WWW-Authenticate)."""

    status_code = 401
    default_message = "Authentication required"
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": 'Bearer realm="dicomgate"'}


class Forbidden(DicomgateError):
    """A valid caller without the scope the route needs."""

    status_code = 403
    default_message = "Not allowed"


# --- Missing things --------------------------------------------------------------------------
class NotFound(DicomgateError):
    status_code = 404
    default_message = "Not found"


class FrameNotFound(NotFound):
    default_message = "No such frame"


class ConversionJobNotFound(NotFound):
    default_message = "No such conversion job"


class RuleNotFound(NotFound):
    """No compression rule with that name in the rules file."""

    default_message = "No such compression rule"


class PatientRecordNotFound(NotFound):
    """No such patient in the patient cache (a lookup by its own route, not an upload)."""

    default_message = "No such patient"


# --- Conflicts and configuration ---------------------------------------------------------------
class Conflict(DicomgateError):
    status_code = 409
    default_message = "The resource was changed concurrently; retry"


class JobRunningElsewhere(Conflict):
    """Another process holds the conversion job's lock and runs it."""

    default_message = "The conversion job is being run by another process"


class StudyMismatch(DicomgateError):
    """An instance stored to one study's URL belongs to another study (PS3.18 §10.5.3)."""

    status_code = 409
    default_message = "The instance does not belong to the study of the request URL"


class IdentityConflict(DicomgateError):
    """An upload would break "one SOP Instance UID, one instance, one patient" (SPEC: Identity).

    Carries what it conflicted with, for the audit trail (never for the answer: the uploader
    is not told which patient holds the instance).
    """

    status_code = 409
    default_message = "The instance conflicts with one already stored; nothing was stored"

    def __init__(
        self,
        message: str | None = None,
        *,
        sop_instance_uid: str = "",
        existing_patient_id: str = "",
        existing_orthanc_id: str = "",
    ) -> None:
        super().__init__(message)
        self.sop_instance_uid = sop_instance_uid
        self.existing_patient_id = existing_patient_id
        self.existing_orthanc_id = existing_orthanc_id


class PatientConflict(IdentityConflict):
    """The SOP Instance UID is already stored under another Patient ID."""

    default_message = "The instance is already stored under another patient; nothing was stored"


class ContentConflict(IdentityConflict):
    """The SOP Instance UID is already stored with other pixels, attributes, study or series."""

    default_message = "The instance is already stored with different content; nothing was stored"


class InstanceBusy(IdentityConflict):
    """Another upload is storing this SOP Instance UID right now, for another patient or content."""

    default_message = "Another upload is storing this instance right now; nothing was stored"


class ConfigurationError(DicomgateError):
    """The settings cannot run safely; raised at start, before anything is served."""

    status_code = 500
    default_message = "Invalid configuration"


class DatabaseUnavailable(DicomgateError):
    """The database cannot serve the request: it does not answer (server down, wrong URL,
    unreadable file), is unwritable or full, or was deleted under a running service. The
    transaction was rolled back."""

    status_code = 503
    default_message = "The database is unavailable"


class ConversionQueueUnavailable(DicomgateError):
    """The task queue (PostgreSQL) refused a new conversion job's first task: the job exists but
    nothing runs it yet. It is marked interrupted, and the next sweep of unfinished jobs (or
    the next start of a dicomgate process) queues it again: starting it again is not needed."""

    status_code = 503
    default_message = "The conversion task queue is unavailable"


class DatabaseNotMigrated(DicomgateError):
    """The database schema is not at this version's Alembic head; the service refuses to start."""

    status_code = 503
    default_message = "The database schema is not up to date; run `dicomgate db upgrade`"


# --- Orthanc ---------------------------------------------------------------------------------
class OrthancFailure(DicomgateError):
    """Base of every failure talking to Orthanc."""

    status_code = 502
    default_message = "Orthanc failed"


class OrthancUnavailable(OrthancFailure):
    status_code = 503
    default_message = "Orthanc is unreachable"


class OrthancTimeout(OrthancFailure):
    status_code = 504
    default_message = "Orthanc did not answer in time"


class OrthancError(OrthancFailure):
    status_code = 502
    default_message = "Orthanc answered with an error"


class ReplaceFailed(OrthancError):
    """Orthanc did not end up serving the converted file (e.g. ``AlreadyStored``); rolled back."""

    default_message = "Orthanc did not store the converted instance"


# --- Workers ---------------------------------------------------------------------------------
class WorkerFailure(DicomgateError):
    """A codec worker crashed on a task (a decoder fault, set off by the file as far as anyone
    can tell) or ran past its time limit; the pool replaced it. Not a bare 500: the file could
    not be processed, and the caller is told so."""

    status_code = 422
    default_message = "The image worker failed"


class WorkerMemoryExceeded(WorkerFailure):
    """A task needed more than a worker's address-space limit; that worker was replaced."""

    default_message = "Processing this image needed more memory than a worker may use"


class WorkerTimeout(WorkerFailure):
    status_code = 504
    default_message = "The image worker ran past its time limit"


class WorkerPoolUnavailable(DicomgateError):
    """The worker pool itself is broken or stopped (pebble's ``BrokenProcessPool``, a pool no
    longer running, workers that cannot be started): no fault of the file, retry later."""

    status_code = 503
    default_message = "The image worker pool is unavailable"


# --- Rendering -------------------------------------------------------------------------------
class ErrorBody(BaseModel):
    """The JSON body of every error answer."""

    success: Literal[False] = False
    error: str = Field(description="A clear, specific message for a person.")
    type: str = Field(description="The error's class, stable for clients to branch on.")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"success": False, "error": "Orthanc is unreachable", "type": "OrthancUnavailable"}
            ]
        }
    }


def error_responses(*errors: type[DicomgateError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the errors a route can raise (grouped by status)."""
    grouped: dict[int, list[type[DicomgateError]]] = {}
    for err in errors:
        grouped.setdefault(err.status_code, []).append(err)
    out: dict[int | str, dict[str, Any]] = {}
    for status, classes in sorted(grouped.items()):
        names = ", ".join(c.__name__ for c in classes)
        out[status] = {
            "model": ErrorBody,
            "description": names,
            "content": {
                "application/json": {
                    "example": {
                        "success": False,
                        "error": classes[0].default_message,
                        "type": classes[0].__name__,
                    }
                }
            },
        }
    return out


ORTHANC_ERRORS: tuple[type[DicomgateError], ...] = (
    OrthancError,
    OrthancUnavailable,
    OrthancTimeout,
)


def _render(
    status: int, message: str, kind: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    from fastapi.responses import JSONResponse

    body = ErrorBody(error=message, type=kind)
    return JSONResponse(status_code=status, content=body.model_dump(), headers=headers)


async def _dicomgate_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DicomgateError)
    if exc.status_code >= 500:
        log.warning("%s: %s", exc.type, exc.message)
    return _render(exc.status_code, exc.message, exc.type, getattr(exc, "headers", None))


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    from starlette.exceptions import HTTPException as StarletteHTTPException

    assert isinstance(exc, StarletteHTTPException)
    kind = "NotFound" if exc.status_code == 404 else "HTTPError"
    message = exc.detail if isinstance(exc.detail, str) else "HTTP error"
    return _render(exc.status_code, message, kind, getattr(exc, "headers", None))


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    from fastapi.exceptions import RequestValidationError

    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else err.get("msg", ""))
    return _render(422, "Invalid request: " + "; ".join(parts), "ValidationError")


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    # A bug, not a domain condition: log it whole, answer without internals.
    log.exception("Unhandled error", exc_info=exc)
    return _render(500, "Internal server error; the incident has been logged", "InternalError")


def install_error_handlers(app: FastAPI) -> None:
    """Register the one mapping from exceptions to the API's error shape."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app.add_exception_handler(DicomgateError, _dicomgate_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
