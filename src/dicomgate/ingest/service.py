"""Ingest: check the patient, then every file through the ``Ingestor`` (parse → stamp →
transcode in the pool → identity check → store in Orthanc), and the routes' answers.

The patient is looked up before anything else, so an unknown ``patient_id`` stores nothing.
Orthanc failures abort the request (503/502/504: the client retries; a file sent twice is
stored once); a bad file only fails itself when several were sent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import anyio
from pydicom.uid import generate_uid
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dicomgate.audit.context import AuditNotes
from dicomgate.codec.pool import WorkerPool
from dicomgate.codec.transcode import TranscodeOptions
from dicomgate.dicom.demographics import Demographics
from dicomgate.dicom.unify import SeriesAssignment, series_label
from dicomgate.errors import (
    DicomgateError,
    IdentityConflict,
    PatientNotFound,
    UnprocessableInput,
    UploadTooLarge,
)
from dicomgate.identity.service import IdentityGuard, is_identity_conflict
from dicomgate.ingest.idempotency import (
    UPLOAD_ID_FIELD,
    parse_upload_id,
    series_uid_for,
    study_uid_for,
)
from dicomgate.ingest.ingestor import Ingestor, UploadItem
from dicomgate.ingest.schemas import (
    FailedFile,
    FolderUploadResult,
    MultiUploadResult,
    UploadResult,
)
from dicomgate.ingest.worker import IngestPlan
from dicomgate.ingest.zipfiles import UnsafeArchive, expand_zip, is_zip_upload
from dicomgate.kit.clock import utcnow
from dicomgate.kit.spool import SpooledFile, SpooledForm
from dicomgate.orthanc import OrthancClient
from dicomgate.patients.service import get_patient
from dicomgate.settings import Settings

log = logging.getLogger(__name__)

ZIP_TOTAL_FACTOR = 4  # a zip may expand to this many times the per-file upload cap


async def lookup_demographics(session: AsyncSession, *, patient_id: str) -> Demographics:
    """The cached patient's demographics, or PatientNotFound (422) — before anything is stored."""
    patient = await get_patient(session, patient_id=patient_id)
    if patient is None:
        raise PatientNotFound(
            f"Unknown patient_id {patient_id!r}: not in the patient cache; nothing was stored"
        )
    return patient.demographics()


def nothing_stored(failed: Sequence[FailedFile]) -> DicomgateError:
    """No file of an upload was stored: 409 when every one was refused for its identity (as
    STOW-RS answers), else 422; the message names each file and why."""
    message = "No file was stored: " + (
        "; ".join(f"{f.name}: {f.error}" for f in failed) or "the upload held no files"
    )
    if failed and all(is_identity_conflict(f.type) for f in failed):
        return IdentityConflict(message)
    return UnprocessableInput(message)


async def upload_files(
    *,
    session: AsyncSession,
    orthanc: OrthancClient,
    pool: WorkerPool,
    settings: Settings,
    guard: IdentityGuard,
    notes: AuditNotes,
    files: Sequence[SpooledFile],
    patient_id: str | None,
    sessions: async_sessionmaker[AsyncSession] | None = None,
) -> UploadResult | MultiUploadResult:
    """Single-upload route: one file → its result (errors raise); several → per-file results
    (``success`` false when some were not stored: the route answers 202)."""
    if not files:
        raise UnprocessableInput("No file was sent: use the multipart field 'file'")
    demographics = None
    if patient_id:
        notes.touched(patient_ids=[patient_id])
        demographics = await lookup_demographics(session, patient_id=patient_id)
    plan = IngestPlan(
        demographics=demographics,
        assignment=None,
        options=TranscodeOptions.from_settings(settings, allow_lossy=True),
        now=utcnow(),
    )
    ingestor = Ingestor(
        orthanc=orthanc, pool=pool, settings=settings, guard=guard, notes=notes, sessions=sessions
    )
    items = [UploadItem(name=f.filename, path=f.path) for f in files]
    if len(items) == 1:
        return await ingestor.ingest(items[0], plan)
    outcomes = await ingestor.ingest_all([(i, plan) for i in items])
    stored = [o for o in outcomes if isinstance(o, UploadResult)]
    failed = [o for o in outcomes if isinstance(o, FailedFile)]
    if not stored:
        raise nothing_stored(failed)
    message = (
        f"Uploaded {len(stored)} files"
        if not failed
        else f"Uploaded {len(stored)} of {len(items)} files"
    )
    return MultiUploadResult(
        success=not failed,
        message=message,
        patient_id=patient_id,
        uploaded=len(stored),
        results=stored,
        failed_files=failed,
    )


def _head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(4)


async def _expand_uploads(
    files: Sequence[SpooledFile], series_paths: Sequence[str], *, settings: Settings
) -> tuple[list[UploadItem], list[FailedFile]]:
    """Turn the uploaded files (zips expanded, their folders appended) into upload items."""
    items: list[UploadItem] = []
    failed: list[FailedFile] = []
    for index, (spooled, series_path) in enumerate(zip(files, series_paths, strict=True)):
        head = await anyio.to_thread.run_sync(_head, spooled.path)
        if not is_zip_upload(spooled.filename, head):
            items.append(UploadItem(spooled.filename, spooled.path, series_path))
            continue
        try:
            expanded = await anyio.to_thread.run_sync(
                partial(
                    expand_zip,
                    spooled.path,
                    spooled.path.parent / f"zip-{index:05d}",
                    max_entries=settings.max_files,
                    max_entry_bytes=settings.max_upload_bytes,
                    max_total_bytes=settings.max_upload_bytes * ZIP_TOTAL_FACTOR,
                )
            )
        except UnsafeArchive as exc:
            failed.append(FailedFile(name=spooled.filename, error=exc.message))
            continue
        for name, reason in expanded.refused:
            failed.append(FailedFile(name=f"{spooled.filename}/{name}", error=reason))
        for entry in expanded.entries:
            folder = "/".join(p for p in (series_path, entry.folder) if p)
            items.append(UploadItem(f"{spooled.filename}/{entry.name}", entry.path, folder))
    return items, failed


async def _stored_study_date_time(
    orthanc: OrthancClient, study_uid: str
) -> tuple[str | None, str | None]:
    """StudyDate/StudyTime of the study already stored under ``study_uid`` (None, None if none)."""
    found = await orthanc.find("Study", {"StudyInstanceUID": study_uid}, limit=1)
    if not found or not isinstance(found[0], dict):
        return None, None
    tags = found[0].get("MainDicomTags") or {}
    return (tags.get("StudyDate") or None), (tags.get("StudyTime") or None)


def _series_key(series_path: str) -> str:
    return "/".join(p for p in series_path.replace("\\", "/").split("/") if p.strip())


async def upload_folder(
    *,
    session: AsyncSession,
    orthanc: OrthancClient,
    pool: WorkerPool,
    settings: Settings,
    guard: IdentityGuard,
    notes: AuditNotes,
    form: SpooledForm,
    sessions: async_sessionmaker[AsyncSession] | None = None,
) -> FolderUploadResult:
    """Folder upload: every file into one new study, one new series per distinct series_path.

    With an ``upload_id`` the Study/Series (and SOP) Instance UIDs are derived from it (and the
    patient), so a retried request stores into the same study and series instead of a
    duplicate. ``failedFiles`` not empty: some files were not stored (the route answers 202).
    """
    patient_id = (form.value("patient_id") or "").strip()
    if not patient_id:
        raise UnprocessableInput("patient_id is required for a folder upload")
    notes.touched(patient_ids=[patient_id])
    upload_id = parse_upload_id(form.values(UPLOAD_ID_FIELD))
    study_description = form.value("study_description") or ""
    files = form.files_of("files", "file")
    if not files:
        raise UnprocessableInput("No files were sent: use the repeated multipart field 'files'")
    series_paths = form.values("series_path")
    if series_paths and len(series_paths) != len(files):
        raise UnprocessableInput(
            f"{len(series_paths)} series_path values for {len(files)} files: "
            "send one per file, or none for a single series"
        )
    demographics = await lookup_demographics(session, patient_id=patient_id)

    items, failed = await _expand_uploads(
        files, series_paths or [""] * len(files), settings=settings
    )
    if len(items) > settings.max_files:
        raise UploadTooLarge(
            f"Too many files after expanding zips: {len(items)}; the limit is {settings.max_files}"
        )
    now = utcnow()
    study_uid = (
        study_uid_for(upload_id=upload_id, patient_id=patient_id)
        if upload_id
        else str(generate_uid())
    )
    # A retry: the files the first attempt stored got its StudyDate/Time where they had none.
    study_date, study_time = (
        await _stored_study_date_time(orthanc, study_uid) if upload_id else (None, None)
    )
    assignments: dict[str, SeriesAssignment] = {}
    for item in items:
        key = _series_key(item.series_path)
        if key not in assignments:
            assignments[key] = SeriesAssignment(
                study_instance_uid=study_uid,
                study_description=study_description,
                series_instance_uid=(
                    series_uid_for(study_uid=study_uid, series_key=key)
                    if upload_id
                    else str(generate_uid())
                ),
                series_number=len(assignments) + 1,
                series_description=series_label(key) or None,
                study_date=study_date,
                study_time=study_time,
            )
    notes.touched(study_instance_uids=[study_uid])
    options = TranscodeOptions.from_settings(settings, allow_lossy=True)
    ingestor = Ingestor(
        orthanc=orthanc, pool=pool, settings=settings, guard=guard, notes=notes, sessions=sessions
    )
    plans = {
        key: IngestPlan(demographics=demographics, assignment=a, options=options, now=now)
        for key, a in assignments.items()
    }
    outcomes = await ingestor.ingest_all([(i, plans[_series_key(i.series_path)]) for i in items])
    stored = [o for o in outcomes if isinstance(o, UploadResult)]
    failed += [o for o in outcomes if isinstance(o, FailedFile)]
    if not stored:
        raise nothing_stored(failed)
    # Orthanc series IDs in series-number order (dict order = first appearance = number).
    first_stored: dict[str, str] = {}
    for item, outcome in zip(items, outcomes, strict=True):
        if isinstance(outcome, UploadResult):
            first_stored.setdefault(
                _series_key(item.series_path), outcome.orthanc_response.ParentSeries
            )
    series_ids = [first_stored[key] for key in assignments if key in first_stored]
    return FolderUploadResult(
        patientId=patient_id,
        studyUid=study_uid,
        studyId=stored[0].orthanc_response.ParentStudy,
        studyDescription=study_description,
        uploaded=len(stored),
        failedFiles=failed,
        orthancSeriesIds=series_ids,
    )
