"""The real run of a conversion job: recovery first, then every instance still to do.

Each instance goes through :func:`convert_instance` (download, transcode and verify in the
pool, replace in Orthanc: see :mod:`.replace`); its outcome is recorded before its journal entry
is dropped, so a crash in between is settled by recovery as "converted by this job", never
miscounted. ``concurrency`` workers share one queue; Orthanc failing stops the run
(interrupted, resumable), a cancel request stops it after the instances in flight. A study is
taken (its lock, :mod:`.locks`) before its first instance and given back after its last; with
the database journal, what a dead runner left half-done in it is settled as it is taken.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from dicomgate import metrics
from dicomgate.codec.pool import WorkerPool
from dicomgate.codec.profiles import HTJ2K_SYNTAXES
from dicomgate.codec.reasons import PassThroughReason, reason_text
from dicomgate.codec.transcode import TranscodeOptions
from dicomgate.conversions import repository
from dicomgate.conversions.carry import CarryOver, detect_carry_over, read_parents, read_state
from dicomgate.conversions.journal import JournalEntry, ReplaceJournal
from dicomgate.conversions.journals import FolderJournal, Journal, open_journal
from dicomgate.conversions.lifecycle import (
    STOPPING_ERRORS,
    ProgressSink,
    RunSummary,
    StudyTally,
    begin_run,
    fail_run,
    finish_run,
    set_job_state,
    stop_run,
)
from dicomgate.conversions.locks import RunLocks, wait_for_study
from dicomgate.conversions.outcomes import OutcomeWriter
from dicomgate.conversions.plan import InstanceRef, InstanceResult, select_studies, study_instances
from dicomgate.conversions.replace import (
    Recovered,
    recover_journal,
    recover_study,
    replace_instance,
)
from dicomgate.conversions.transcoding import transcode_hashed
from dicomgate.db import session_scope
from dicomgate.errors import ConversionJobNotFound, DicomgateError
from dicomgate.orthanc import OrthancClient
from dicomgate.runtime import Runtime

log = logging.getLogger(__name__)


async def convert_instance(
    orthanc: OrthancClient,
    pool: WorkerPool,
    journal: Journal,
    ref: InstanceRef,
    *,
    options: TranscodeOptions,
    job_id: int | None = None,
    carry: CarryOver | None = None,
    concurrency: int = 1,
) -> InstanceResult:
    """Convert one stored instance in place.

    A converted instance's journal entry is left for the caller to drop once the outcome is
    recorded (see :func:`.replace.replace_instance`). ``concurrency``: how many instances the
    run replaces at once (a series no bigger may be emptied by it: see
    :func:`.carry.parents_at_risk`). ``carry``: what this Orthanc lets a replacement carry
    over (:func:`.carry.detect_carry_over`; by default user metadata only, no labels).
    """
    carry = carry or CarryOver()
    header = await orthanc.instance_header(ref.orthanc_id)
    if header.transfer_syntax in HTJ2K_SYNTAXES:
        log.info("Skipping instance %s: already HTJ2K", ref.orthanc_id)
        return InstanceResult(
            ref, "skipped", PassThroughReason.ALREADY_HTJ2K, ref.file_size, ref.file_size
        )
    original = await orthanc.instance_file(ref.orthanc_id)
    log.info("Converting instance %s (SOP Instance UID %s)", ref.orthanc_id, ref.sop_instance_uid)
    transcoded = await pool.run(transcode_hashed, original, options)
    result, converted_sha256 = transcoded.result, transcoded.converted_sha256
    metrics.record_transcode("conversion", result)
    if converted_sha256 is None:  # not converted
        log.info("Skipping instance %s: %s", ref.orthanc_id, reason_text(result.reason))
        return InstanceResult(ref, "skipped", result.reason, len(original), len(original))
    # Read as late as possible: what is set after this read and before the delete is lost.
    user_metadata, labels = await read_state(orthanc, "instances", ref.orthanc_id, carry)
    parents = await read_parents(orthanc, ref, carry, concurrency=concurrency)
    entry = JournalEntry(
        orthanc_id=ref.orthanc_id,
        sop_instance_uid=result.sop_instance_uid,
        original_sha256=transcoded.original_sha256,
        original_size=len(original),
        original_frame_crc32=tuple(result.frame_crc32),
        converted_sha256=converted_sha256,
        converted_size=len(result.data),
        job_id=job_id,
        study_instance_uid=ref.study_instance_uid,
        user_metadata=user_metadata,
        labels=labels,
        parents=parents,
    )
    file_uuid = await replace_instance(
        orthanc, journal, entry=entry, original=original, converted=result.data
    )
    saved = 100.0 * (1 - len(result.data) / len(original)) if original else 0.0
    log.info(
        "Replaced instance %s: %d → %d bytes (%.1f%% saved)",
        ref.orthanc_id,
        len(original),
        len(result.data),
        saved,
    )
    return InstanceResult(
        ref, "converted", None, len(original), len(result.data), result.transfer_syntax, file_uuid
    )


async def run_real_job(
    runtime: Runtime,
    job_id: int,
    *,
    locks: RunLocks,
    concurrency: int,
    progress: ProgressSink | None,
) -> RunSummary:
    """Run (or resume) a real job whose lock the caller holds (:func:`.service.run_job`): each
    study under its lock; with a folder journal, one run per folder at a time."""
    journal = open_journal(runtime.engine, runtime.settings.journal_dir)
    async with journal.exclusive() as owned:
        if not owned:
            summary = RunSummary(job_id=job_id, state="interrupted", dry_run=False, selection="")
            return await stop_run(
                runtime,
                summary,
                time.perf_counter(),
                f"another conversion is running with the journal {journal.where}",
            )
        return await _run(
            runtime, journal, locks, job_id, concurrency=concurrency, progress=progress
        )


async def _run(
    runtime: Runtime,
    journal: Journal,
    locks: RunLocks,
    job_id: int,
    *,
    concurrency: int,
    progress: ProgressSink | None,
) -> RunSummary:
    begun = await begin_run(runtime, job_id, dry_run=False)
    summary, started = begun.summary, begun.started

    async def settle(entry: JournalEntry) -> None:
        await record_recovered(runtime, entry)

    try:
        carry = await detect_carry_over(runtime.orthanc)
        summary.recovered = await recover_legacy_folder(runtime, journal, settle)
        summary.recovered += await recover_journal(
            runtime.orthanc, journal, settle=settle, locks=locks
        )
        async with session_scope(runtime.sessions) as session:
            already = await repository.done_instance_ids(session, job_id)
            failed_before = await repository.failed_instance_ids(session, job_id)
        studies = await select_studies(runtime.orthanc, begun.selection)
        todo: list[InstanceRef] = []
        total = 0
        for study in studies:
            listed = await study_instances(runtime.orthanc, study)
            instances = [ref for ref in listed if begun.selection.covers(ref)]
            total += len(instances)
            todo.extend(i for i in instances if i.orthanc_id not in already)
    except STOPPING_ERRORS as exc:
        return await stop_run(runtime, summary, started, str(exc))
    except DicomgateError as exc:
        return await fail_run(runtime, summary, started, exc.message)
    await set_job_state(runtime, job_id, instances_total=total)
    if progress is not None:
        progress.started(studies=len(studies), instances=total, already_done=total - len(todo))

    run = RealRun.of_job(
        runtime,
        journal,
        locks,
        job_id,
        target=begun.target_syntax,
        carry=carry,
        concurrency=concurrency,
        progress=progress,
        summary=summary,
        failed_before=failed_before,
    )
    for ref in todo:
        run.queue.put_nowait(ref)
        run.left[ref.study_instance_uid] = run.left.get(ref.study_instance_uid, 0) + 1
    await asyncio.gather(*(run.worker() for _ in range(max(1, concurrency))))
    await run.written()  # every outcome recorded before the run ends
    if run.stop_reason is not None:
        return await stop_run(runtime, summary, started, run.stop_reason)
    return await finish_run(
        runtime, summary, started, "cancelled" if run.cancelled else "completed"
    )


@dataclass
class RealRun:
    """What the workers of one run share: the queue, the tally, and why they stop."""

    runtime: Runtime
    journal: Journal
    locks: RunLocks
    job_id: int
    options: TranscodeOptions
    carry: CarryOver
    concurrency: int
    progress: ProgressSink | None
    summary: RunSummary
    failed_before: set[str]
    queue: asyncio.Queue[InstanceRef] = field(default_factory=asyncio.Queue)
    stop_reason: str | None = None  # Orthanc failed: the run is interrupted (first reason)
    cancelled: bool = False  # cancel requested: the run stops after the instances in flight
    current_study: str | None = None
    # Instances of each study not done yet in this run; its lock is released at 0.
    left: dict[str, int] = field(default_factory=dict)
    # The studies this run holds, each taken (and its journal settled) once by one worker.
    taking: dict[str, asyncio.Lock] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)
    outcomes: OutcomeWriter = field(init=False)
    # Outcomes handed to the writer and not awaited yet, by study.
    writing: dict[str, list[asyncio.Future[bool]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.outcomes = OutcomeWriter(self.runtime, self.journal, self.job_id)

    @classmethod
    def of_job(
        cls,
        runtime: Runtime,
        journal: Journal,
        locks: RunLocks,
        job_id: int,
        *,
        target: str | None,
        carry: CarryOver,
        concurrency: int,
        progress: ProgressSink | None,
        summary: RunSummary | None = None,
        failed_before: set[str] | None = None,
    ) -> RealRun:
        """The run of a real job: lossless, to the job's ``target`` (None: the settings').
        ``summary``: where it tallies (a new one of its own by default); ``failed_before``: the
        instances whose earlier attempt failed (counted as retried)."""
        return cls(
            runtime=runtime,
            journal=journal,
            locks=locks,
            job_id=job_id,
            options=TranscodeOptions.from_settings(
                runtime.settings, allow_lossy=False, target=target
            ),
            carry=carry,
            concurrency=concurrency,
            progress=progress,
            summary=summary
            if summary is not None
            else RunSummary(job_id=job_id, state="running", dry_run=False, selection=""),
            failed_before=failed_before if failed_before is not None else set(),
        )

    async def worker(self) -> None:
        """Take instances off the queue until it is empty or the run stops."""
        while self.stop_reason is None and not self.cancelled and not self.queue.empty():
            ref = self.queue.get_nowait()
            if ref.study_instance_uid != self.current_study:
                self.current_study = ref.study_instance_uid
                if self.progress is not None:
                    self.progress.study(ref.study_instance_uid)
            try:
                await self._take_study(ref.study_instance_uid)
                result = await self._convert_one(ref)
            except STOPPING_ERRORS as exc:
                if self.stop_reason is None:
                    self.stop_reason = str(exc)
                return
            except (DicomgateError, OSError) as exc:  # _take_study's: no work on it unsettled
                if self.stop_reason is None:
                    self.stop_reason = f"study {ref.study_instance_uid} left unsettled: {exc}"
                return
            self._done(ref, result)
            await self._leave_study(ref.study_instance_uid)

    async def _take_study(self, study: str) -> None:
        """Hold the study's lock before touching its instances; settle what a dead runner left
        half-done in it first (a failure to settle stops the run: Orthanc is failing)."""
        async with self.taking.setdefault(study, asyncio.Lock()):
            if study in self.held:
                return
            await wait_for_study(self.locks, study)
            self.held.add(study)
            if not self.journal.shared:
                return  # settled at the start of this run, which holds the journal alone

            async def settle(entry: JournalEntry) -> None:
                await record_recovered(self.runtime, entry)

            recovered = await recover_study(
                self.runtime.orthanc, self.journal, study, settle=settle
            )
            self.summary.recovered += recovered

    async def _leave_study(self, study: str) -> None:
        """Release the study once this run has done all its instances and recorded them."""
        self.left[study] -= 1
        if self.left[study] == 0 and study in self.held:
            await self.written(study)
            self.held.discard(study)
            await self.locks.release_study(study)

    async def _convert_one(self, ref: InstanceRef) -> InstanceResult:
        """One instance's outcome; a failure fails this instance only (Orthanc's stops all)."""
        try:
            return await convert_instance(
                self.runtime.orthanc,
                self.runtime.pool,
                self.journal,
                ref,
                options=self.options,
                job_id=self.job_id,
                carry=self.carry,
                concurrency=self.concurrency,
            )
        except STOPPING_ERRORS:
            raise
        except DicomgateError as exc:
            log.error("Failed instance %s: %s", ref.orthanc_id, exc.message)
            reason = f"{exc.type}: {exc.message}"
        except Exception as exc:  # a bug: keep going, but never silently
            log.exception("Failed instance %s", ref.orthanc_id)
            reason = f"{type(exc).__name__}: {exc}"
        return InstanceResult(ref, "failed", reason, ref.file_size, ref.file_size)

    def _done(self, ref: InstanceRef, result: InstanceResult) -> None:
        """Count and report one outcome, and hand it to the writer: it is recorded, then a
        converted instance's journal entry dropped, while this worker goes on (awaited before
        the study is given back: :meth:`_leave_study`)."""
        _tally(self.summary, result)
        if ref.orthanc_id in self.failed_before:
            self.summary.retried[result.outcome] += 1
        if self.progress is not None:
            self.progress.advanced(result)
        written = self.outcomes.submit(result)
        written.add_done_callback(self._cancel_if_asked)
        self.writing.setdefault(ref.study_instance_uid, []).append(written)

    def _cancel_if_asked(self, written: asyncio.Future[bool]) -> None:
        if not written.cancelled() and written.exception() is None and written.result():
            self.cancelled = True

    async def written(self, study: str | None = None) -> None:
        """Wait until the outcomes handed over (of one study, or all) are recorded; raises what
        recording one raised."""
        studies = [study] if study is not None else list(self.writing)
        for key in studies:
            for written in self.writing.pop(key, []):
                await written


async def recover_legacy_folder(
    runtime: Runtime, journal: Journal, settle: Callable[[JournalEntry], Awaitable[None]]
) -> list[Recovered]:
    """On PostgreSQL, settle what a folder journal kept from before the database journal (a
    deployment upgraded with replacements pending), under the folder's lock."""
    if isinstance(journal, FolderJournal):
        return []
    folder = runtime.settings.journal_dir
    if not await asyncio.to_thread(ReplaceJournal.count_pending, folder):
        return []
    legacy = FolderJournal(folder)
    async with legacy.exclusive() as owned:
        if not owned:
            return []
        return await recover_journal(runtime.orthanc, legacy, settle=settle)


async def _record(runtime: Runtime, job_id: int, result: InstanceResult) -> bool:
    """Record one outcome in its own transaction; True if cancel was asked."""
    async with session_scope(runtime.sessions) as session:
        return await repository.record_outcome(session, job_id, result)


async def record_recovered(runtime: Runtime, entry: JournalEntry) -> None:
    """Record "converted" for a replacement a crash left unrecorded (in the job that did it)."""
    if entry.job_id is None:
        return
    ref = InstanceRef(
        orthanc_id=entry.orthanc_id,
        sop_instance_uid=entry.sop_instance_uid,
        study_instance_uid=entry.study_instance_uid,
        file_size=entry.original_size,
    )
    result = InstanceResult(ref, "converted", None, entry.original_size, entry.converted_size)
    try:
        await _record(runtime, entry.job_id, result)
    except ConversionJobNotFound:
        log.warning(
            "Recovered instance %s belongs to conversion job %d, which no longer exists",
            entry.orthanc_id,
            entry.job_id,
        )


def _tally(summary: RunSummary, result: InstanceResult) -> None:
    metrics.record_conversion(
        result.outcome, reason=result.reason, before=result.bytes_before, after=result.bytes_after
    )
    summary.instances_this_run += 1
    tally = summary.studies.setdefault(result.ref.study_instance_uid, StudyTally())
    tally.bytes_now += result.bytes_before
    tally.bytes_projected += result.bytes_after
    if result.outcome in ("converted", "planned"):
        tally.to_convert += 1
    elif result.outcome == "skipped":
        tally.skipped[result.reason or "unknown"] += 1
    else:
        tally.failed += 1
