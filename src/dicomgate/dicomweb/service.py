"""DICOMweb STOW-RS (PS3.18 §10.5): each part through the same ingest as the upload routes.

Per part: validate, transcode losslessly to HTJ2K, verify, store in Orthanc — the upload
routes' ``Ingestor`` and worker task, without patient stamping (a STOW request names no
patient) and, for ``/studies/{uid}``, refusing instances of any other study before anything
is stored. A bad part fails only itself (an item of the Failed SOP Sequence); Orthanc being
down or erroring aborts the request (503/502/504, the client retries: a file sent twice is
stored once).
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import anyio
from python_multipart.multipart import parse_options_header
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dicomgate.audit.context import AuditNotes
from dicomgate.codec.pool import WorkerPool
from dicomgate.codec.transcode import TranscodeOptions
from dicomgate.dicom.preamble import PART10_PREFIX, ZERO_PREAMBLE, looks_like_part10
from dicomgate.dicom.uids import is_uid
from dicomgate.dicomweb.schemas import FailureReason, PartStatus, StoreReport, WarningReason
from dicomgate.dicomweb.worker import SopIdentity, read_sop_identity
from dicomgate.errors import (
    BadRequest,
    DicomgateError,
    IdentityConflict,
    ImageTooLarge,
    InvalidCodestream,
    InvalidDicom,
    NotAcceptable,
    NotDicom,
    PatientConflict,
    StudyMismatch,
    UnsupportedMediaType,
    WorkerMemoryExceeded,
)
from dicomgate.identity.service import IdentityGuard
from dicomgate.ingest.ingestor import REQUEST_FAILURES, Ingestor, UploadItem
from dicomgate.ingest.worker import IngestPlan
from dicomgate.kit.clock import utcnow
from dicomgate.kit.disk import disk_full_is_507
from dicomgate.kit.spool import RELATED, SpooledFile
from dicomgate.kit.tasks import gather_or_cancel
from dicomgate.orthanc import OrthancClient
from dicomgate.phi import Phi
from dicomgate.settings import Settings

log = logging.getLogger(__name__)

APPLICATION_DICOM = "application/dicom"
# PS3.18 §10.5.1: the metadata-and-bulk-data forms of the Store Transaction.
METADATA_MEDIA_TYPES = frozenset({"application/dicom+json", "application/dicom+xml"})


def _media_type(value: bytes | str | None) -> tuple[str, dict[bytes, bytes]]:
    kind, params = parse_options_header(value)
    return kind.decode("latin-1").lower(), params


ANSWER_MEDIA_TYPES = frozenset(
    {"*/*", "application/*", "application/dicom+json", "application/json"}
)


def check_accept(accept: str | None) -> None:
    """Refuse (406) a request whose Accept header rules out the DICOM JSON answer.

    PS3.18 §10.5.3: the Store Instances Response is application/dicom+json or +xml; dicomgate
    answers in JSON only. No Accept header (or an empty one) accepts anything.
    """
    if not accept or not accept.strip():
        return
    allowed = []
    for item in accept.split(","):
        kind, params = _media_type(item.strip())
        try:
            quality = float(params.get(b"q", b"1").decode("latin-1"))
        except ValueError:
            quality = 1.0
        if quality > 0:
            allowed.append(kind)
    if not any(kind in ANSWER_MEDIA_TYPES for kind in allowed):
        raise NotAcceptable(
            "The STOW-RS answer is application/dicom+json (application/dicom+xml is not "
            f"supported), which the Accept header ({accept.strip()[:200]}) does not allow"
        )


def check_store_media_type(content_type: str | None) -> None:
    """Refuse (415) any request body but ``multipart/related; type="application/dicom"``.

    PS3.18 §10.5.1 also defines STOW of metadata (``application/dicom+json`` / ``+xml``) with
    bulk data parts; dicomgate stores whole Part 10 instances only, and says so.
    """
    kind, params = _media_type(content_type)
    root = params.get(b"type", b"").decode("latin-1").strip().lower()
    if kind in METADATA_MEDIA_TYPES or (kind == RELATED and root in METADATA_MEDIA_TYPES):
        raise UnsupportedMediaType(
            "STOW-RS of metadata and bulk data (application/dicom+json, application/dicom+xml) "
            'is not supported: send multipart/related; type="application/dicom" with one '
            "DICOM Part 10 file per part"
        )
    if kind != RELATED:
        raise UnsupportedMediaType(
            'A STOW-RS request must be multipart/related; type="application/dicom" '
            f"(this one is {kind or 'without a Content-Type'})"
        )
    if not root:
        raise UnsupportedMediaType(
            "The multipart/related request has no type parameter: send Content-Type: "
            'multipart/related; type="application/dicom"; boundary=…'
        )
    if root != APPLICATION_DICOM:
        raise UnsupportedMediaType(
            f'multipart/related; type="{root}" is not supported: only type="application/dicom" '
            "(DICOM Part 10 files) is"
        )


def check_study_uid(study_instance_uid: str) -> str:
    """The study of ``/dicomweb/studies/{uid}`` must be a UID (PS3.5 §9.1), else 400."""
    if not is_uid(study_instance_uid):
        raise BadRequest(f"{study_instance_uid!r} is not a Study Instance UID")
    return study_instance_uid


def failure_reason(error: DicomgateError) -> FailureReason:
    """The Failure Reason (PS3.18 Table I.2-2) for why ingest refused a part."""
    if isinstance(error, StudyMismatch):
        return FailureReason.STUDY_MISMATCH
    if isinstance(error, PatientConflict):
        return FailureReason.PATIENT_CONFLICT
    if isinstance(error, IdentityConflict):
        return FailureReason.DUPLICATE_INSTANCE
    if isinstance(error, NotDicom | InvalidDicom | InvalidCodestream):
        return FailureReason.CANNOT_UNDERSTAND
    if isinstance(error, ImageTooLarge | WorkerMemoryExceeded):
        return FailureReason.OUT_OF_RESOURCES
    return FailureReason.PROCESSING_FAILURE


_PREAMBLE = ZERO_PREAMBLE + PART10_PREFIX  # PS3.10 §7.1
_VR = re.compile(rb"[A-Z]{2}")


def _add_missing_preamble(path: Path) -> None:
    """Give a part that starts straight with its file meta the PS3.10 §7.1 preamble and prefix.

    dicomweb-client (``pydicom.dcmwrite`` of a Dataset built in memory) sends parts like that:
    the file meta group (0002,xxxx, explicit VR little endian) without the 128 bytes and
    ``DICM`` before it. Ingest zeroes the preamble anyway, so adding one changes nothing else.
    """
    with path.open("rb") as fh:
        head = fh.read(len(_PREAMBLE))
    if looks_like_part10(head) or head[:2] != b"\x02\x00" or not _VR.fullmatch(head[4:6]):
        return
    fixed = path.with_name(path.name + ".p10")
    with path.open("rb") as src, fixed.open("wb") as dst:
        dst.write(_PREAMBLE)
        shutil.copyfileobj(src, dst, 1024 * 1024)
    fixed.replace(path)


def _is_dicom_part(content_type: str) -> bool:
    # A part without a Content-Type is taken as the request's type parameter (RFC 2387 §3.1).
    return not content_type or _media_type(content_type)[0] == APPLICATION_DICOM


async def _identity(pool: WorkerPool, part: SpooledFile, error: DicomgateError) -> SopIdentity:
    """The UIDs to name a refused part by, read in a worker (not for bytes that are not DICOM)."""
    if isinstance(error, NotDicom):
        return SopIdentity()
    try:
        return await pool.run(read_sop_identity, str(part.path))
    except DicomgateError:  # the worker crashed or timed out on a file already refused
        return SopIdentity()


async def _store_part(
    ingestor: Ingestor, pool: WorkerPool, part: SpooledFile, plan: IngestPlan, *, alone: bool
) -> PartStatus:
    """One part → its status; only Orthanc failures raise (they abort the request).
    ``alone``: the request's only part (its output may come back in memory: nothing else
    waits to be stored beside it)."""
    if not _is_dicom_part(part.content_type):
        log.info(
            "STOW-RS part %s refused: Content-Type %r is not application/dicom",
            Phi(repr(part.filename)),
            part.content_type,
        )
        return PartStatus(failure=FailureReason.CANNOT_UNDERSTAND)
    with disk_full_is_507("storing a STOW-RS part"):
        await anyio.to_thread.run_sync(_add_missing_preamble, part.path)
    try:
        stored = await ingestor.store_file(
            UploadItem(name=part.filename, path=part.path), plan, inline=alone
        )
    except REQUEST_FAILURES:
        raise
    except DicomgateError as exc:
        log.info("STOW-RS part %s refused: %s", Phi(repr(part.filename)), exc.type)
        identity = await _identity(pool, part, exc)
        return PartStatus(
            sop_class_uid=identity.sop_class_uid,
            sop_instance_uid=identity.sop_instance_uid,
            failure=failure_reason(exc),
        )
    outcome = stored.outcome
    stored_uid = outcome.result.sop_instance_uid
    sent_uid = outcome.source_sop_instance_uid or stored_uid
    if stored_uid != sent_uid:
        # Lossy mode (DICOMGATE_LOSSY_QUALITY) stores a new instance under a new UID
        # (PS3.3 C.7.6.1.1.5): a coercion the client must hear about (PS3.18 §10.5.3).
        return PartStatus(
            sop_class_uid=outcome.sop_class_uid,
            sop_instance_uid=stored_uid,
            warning=WarningReason.COERCION,
            original_sop_instance_uid=sent_uid,
            modified_at=plan.now,
            study_instance_uid=outcome.study_instance_uid,
            series_instance_uid=outcome.series_instance_uid,
        )
    return PartStatus(
        sop_class_uid=outcome.sop_class_uid,
        sop_instance_uid=stored_uid,
        study_instance_uid=outcome.study_instance_uid,
        series_instance_uid=outcome.series_instance_uid,
    )


async def store_instances(
    *,
    orthanc: OrthancClient,
    pool: WorkerPool,
    settings: Settings,
    guard: IdentityGuard,
    notes: AuditNotes,
    parts: Sequence[SpooledFile],
    study_instance_uid: str | None,
    service_url: str = "",
    sessions: async_sessionmaker[AsyncSession] | None = None,
) -> StoreReport:
    """Store every part (in parallel, bounded like the upload routes); report each one."""
    if not parts:
        raise BadRequest(
            "The STOW-RS request holds no parts: send one application/dicom part per instance"
        )
    plan = IngestPlan(
        demographics=None,
        assignment=None,
        options=TranscodeOptions.from_settings(settings, allow_lossy=True),
        now=utcnow(),
        required_study_uid=study_instance_uid,
    )
    notes.touched(study_instance_uids=[study_instance_uid or ""])
    ingestor = Ingestor(
        orthanc=orthanc, pool=pool, settings=settings, guard=guard, notes=notes, sessions=sessions
    )
    alone = len(parts) == 1
    statuses = await gather_or_cancel(
        [_store_part(ingestor, pool, p, plan, alone=alone) for p in parts]
    )
    return StoreReport(parts=statuses, service_url=service_url)
