"""The Ingestor: uploaded files through the worker pool and into Orthanc, with bounded concurrency.

Each file is *prepared* (one worker call, ``ingest.worker.ingest_file``: parse, check, stamp,
transcode; the output waits on disk, or for a request of one file comes back in memory) and
then *stored* through the identity guard (one SOP Instance UID, one patient: the check is one
``POST /tools/find``, see ``identity.service``; then one ``POST /instances``). A request's files
are all prepared before any is stored (:meth:`Ingestor.ingest_all`), so a request that fails as
a whole while they are prepared stores nothing. Used by the upload routes (``ingest.service``)
and DICOMweb STOW-RS.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import anyio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dicomgate import metrics
from dicomgate.audit.context import AuditNotes
from dicomgate.codec.pool import WorkerPool
from dicomgate.codec.reasons import reason_text
from dicomgate.errors import (
    DicomgateError,
    InsufficientStorage,
    OrthancFailure,
)
from dicomgate.identity.service import ALREADY_STORED, IdentityGuard, StoredAttachment
from dicomgate.ingest.schemas import FailedFile, OrthancStoreAnswer, UploadResult
from dicomgate.ingest.worker import IngestOutcome, IngestPlan, ingest_file
from dicomgate.kit.tasks import gather_or_cancel
from dicomgate.orthanc import OrthancClient
from dicomgate.orthanc_models import StoredInstance
from dicomgate.phi import Phi
from dicomgate.settings import Settings
from dicomgate.statistics.ledger import StoredRecord, record_ingested

log = logging.getLogger(__name__)

CONVERTED_MESSAGE = "Uploaded and converted successfully"
ALREADY_STORED_MESSAGE = (
    "Already stored: identical to the instance stored before (same patient, study, series, "
    "pixels and attributes); nothing changed"
)
# What fails a whole upload request instead of one file: Orthanc down or failing (the client
# retries) and no space left to work in (507).
REQUEST_FAILURES: tuple[type[DicomgateError], ...] = (OrthancFailure, InsufficientStorage)
STREAM_ABOVE_BYTES = 16 * 1024 * 1024  # larger outputs are streamed to Orthanc from disk
STREAM_CHUNK_BYTES = 1024 * 1024
# A request of one file gets an output up to this size back from the worker in memory (one
# copy, as a whole-file POST holds anyway) instead of through a file written, read and deleted.
INLINE_MAX_BYTES = STREAM_ABOVE_BYTES


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as fh:
        while chunk := await fh.read(STREAM_CHUNK_BYTES):
            yield chunk


@dataclass(frozen=True)
class UploadItem:
    """One file to ingest: its label for the client, its spooled path, its folder."""

    name: str
    path: Path
    series_path: str = ""


def result_message(outcome: IngestOutcome, *, status: str | None = "Success") -> str:
    """'Uploaded and converted successfully', 'Uploaded unchanged: <why>' or 'Already stored…'."""
    if status == ALREADY_STORED:
        return ALREADY_STORED_MESSAGE
    result = outcome.result
    if result.converted:
        return CONVERTED_MESSAGE
    return f"Uploaded unchanged: {reason_text(result.reason)}"


@dataclass(frozen=True)
class PreparedFile:
    """One file the worker has checked and transcoded; its output waits to be stored (on disk
    at ``output``, or in memory when ``outcome.inline``)."""

    item: UploadItem
    outcome: IngestOutcome
    output: Path


@dataclass(frozen=True)
class StoredFile:
    """One ingested file: what the worker made of it and Orthanc's answer to storing it."""

    outcome: IngestOutcome
    answer: StoredInstance


class Ingestor:
    """Runs files through the pool and into Orthanc with bounded concurrency.

    Every file is stored through the identity guard, and what it touched is noted for the
    request's audit row.
    """

    def __init__(
        self,
        *,
        orthanc: OrthancClient,
        pool: WorkerPool,
        settings: Settings,
        guard: IdentityGuard,
        notes: AuditNotes,
        sessions: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self.orthanc = orthanc
        self.pool = pool
        self.guard = guard
        self.notes = notes
        self.sessions = sessions  # where stored instances are recorded (storage statistics)
        # Enough queued work to keep every worker busy, without holding many results at once.
        self._processing = asyncio.Semaphore(max(2, pool.workers * 2))
        self._storing = asyncio.Semaphore(settings.orthanc_concurrency)

    async def ingest(self, item: UploadItem, plan: IngestPlan) -> UploadResult:
        """One file: transcode in a worker, store in Orthanc; domain errors propagate."""
        stored = await self.store_file(item, plan, inline=True)
        return upload_result(item.name, stored.outcome, stored.answer)

    async def store_file(
        self, item: UploadItem, plan: IngestPlan, *, inline: bool = False
    ) -> StoredFile:
        """``ingest`` without the upload routes' answer shape (DICOMweb builds its own).
        ``inline``: see :meth:`prepare`."""
        return await self.store(await self.prepare(item, plan, inline=inline))

    async def prepare(
        self, item: UploadItem, plan: IngestPlan, *, inline: bool = False
    ) -> PreparedFile:
        """Parse, check, stamp and transcode one file in a worker; the output waits on disk,
        or in memory when ``inline`` and at most ``INLINE_MAX_BYTES`` (only for callers that
        store it next: many outputs must not pile up in memory while they wait)."""
        output = item.path.with_name(item.path.name + ".out")
        inline_max = INLINE_MAX_BYTES if inline else 0
        try:
            async with self._processing:
                outcome: IngestOutcome = await self.pool.run(
                    ingest_file, str(item.path), str(output), plan, inline_max=inline_max
                )
        except BaseException:
            await anyio.to_thread.run_sync(partial(output.unlink, missing_ok=True))
            raise
        metrics.record_transcode("ingest", outcome.result)
        return PreparedFile(item=item, outcome=outcome, output=output)

    async def store(self, prepared: PreparedFile) -> StoredFile:
        """Send a prepared file to Orthanc (and drop its output file, whatever happens)."""
        outcome, output = prepared.outcome, prepared.output
        try:
            async with self._storing:
                answer = await self._store_checked(outcome, output)
            metrics.record_ingested(outcome.result)
        finally:
            if not outcome.inline:
                await anyio.to_thread.run_sync(partial(output.unlink, missing_ok=True))
        return StoredFile(outcome=outcome, answer=answer)

    async def ingest_all(
        self, items: Sequence[tuple[UploadItem, IngestPlan]]
    ) -> list[UploadResult | FailedFile]:
        """Every file prepared (checked and transcoded) before any is stored, in item order.

        A request that fails as a whole (no space left: 507; Orthanc down: 503) therefore
        stores nothing when it fails while files are being prepared; a bad file only fails
        itself (a FailedFile).
        """
        prepared = await gather_or_cancel([self._prepare_or_fail(i, plan) for i, plan in items])
        return await gather_or_cancel([self._store_or_fail(p) for p in prepared])

    async def _prepare_or_fail(
        self, item: UploadItem, plan: IngestPlan
    ) -> PreparedFile | FailedFile:
        try:
            return await self.prepare(item, plan)
        except REQUEST_FAILURES:
            raise
        except DicomgateError as exc:
            return _refused(item, exc)

    async def _store_or_fail(
        self, prepared: PreparedFile | FailedFile
    ) -> UploadResult | FailedFile:
        if isinstance(prepared, FailedFile):
            return prepared
        try:
            stored = await self.store(prepared)
        except REQUEST_FAILURES:
            raise
        except DicomgateError as exc:
            return _refused(prepared.item, exc)
        return upload_result(prepared.item.name, stored.outcome, stored.answer)

    async def _store_checked(self, outcome: IngestOutcome, output: Path) -> StoredInstance:
        """Store through the identity guard (which notes what was touched, conflicts too)."""
        return await self.guard.store(
            outcome.identity,
            partial(self._store, outcome, output),
            scratch=output.with_name(output.name + ".stored"),
            notes=self.notes,
            record=None if self.sessions is None else partial(_record, outcome),
        )

    async def _store(self, outcome: IngestOutcome, path: Path) -> StoredInstance:
        """Send the worker's output to Orthanc: inline bytes as they are; the output file
        whole when small, streamed when large."""
        if outcome.inline:
            return await self.orthanc.store_instance(outcome.result.data)
        size = outcome.result.size
        if size <= STREAM_ABOVE_BYTES:
            data = await anyio.to_thread.run_sync(path.read_bytes)
            return await self.orthanc.store_instance(data)
        return await self.orthanc.store_instance_stream(_file_chunks(path), size=size)


async def _record(
    outcome: IngestOutcome,
    session: AsyncSession,
    *,
    answer: StoredInstance,
    attachment: StoredAttachment | None,
) -> None:
    """Record a new instance (Orthanc answered ``Success``, not ``AlreadyStored``) for the
    storage statistics, in the transaction that settles its claim (best effort: the guard
    settles the claim alone, and logs it, if this fails; the upload never does). With the
    file's UUID when Orthanc's MD5 of it is that of the bytes sent: what DICOMweb reads the
    stored syntax by (instead of the file's header)."""
    if answer.status != "Success":
        return
    await record_ingested(
        session,
        StoredRecord(
            orthanc_id=answer.id,
            patient_orthanc_id=answer.parent_patient,
            study_orthanc_id=answer.parent_study,
            series_orthanc_id=answer.parent_series,
            modality=outcome.modality or None,
            transfer_syntax=outcome.result.transfer_syntax,
            size_before=outcome.result.original_size,
            size_after=outcome.result.size,
            file_uuid=(
                attachment.uuid if attachment and attachment.md5 == outcome.output_md5 else None
            ),
        ),
    )


def _refused(item: UploadItem, exc: DicomgateError) -> FailedFile:
    log.info("Upload of %s refused: %s", Phi(repr(item.name)), exc.type)
    return FailedFile(name=item.name, error=exc.message, type=exc.type)


def upload_result(name: str, outcome: IngestOutcome, answer: StoredInstance) -> UploadResult:
    result = outcome.result
    return UploadResult(
        message=result_message(outcome, status=answer.status),
        filename=name,
        patient_id=outcome.patient_id or None,
        orthanc_response=OrthancStoreAnswer(
            ID=answer.id,
            ParentPatient=answer.parent_patient,
            ParentStudy=answer.parent_study,
            ParentSeries=answer.parent_series,
            Path=answer.path,
            Status=answer.status or "Success",
        ),
        source_transfer_syntax=result.source_transfer_syntax,
        stored_transfer_syntax=result.transfer_syntax,
        original_size=result.original_size,
        stored_size=result.size,
        converted=result.converted,
        pass_through_reason=result.reason,
    )
