"""Batch conversion of stored instances to HTJ2K: safe replacement, recovery, jobs, runs.

The replacement never trusts Orthanc's answer alone. With ``OverwriteInstances: false`` a
re-posted instance (same UIDs, so the same Orthanc ID) is ``AlreadyStored`` and the old file kept;
with ``true`` a post replaces it. So, whatever the setting, each instance is: journaled durably on
disk (original bytes, fsync) → deleted → the converted file posted (only ``Success`` counts) →
the served file's SHA-256 checked against the converted file → the user metadata and labels
Orthanc kept for the old file re-applied → the outcome recorded in the job → journal entry dropped.
Deleting the last instance of a series also removes the series (and its study and patient when
they become empty) with what Orthanc kept on them — the patient's protection from recycling, user
metadata, labels — so for a small series that state is journaled too and re-applied to the
parents the delete removed. Any failure re-posts the journaled original (and its metadata); a
crash leaves the entry, which :func:`recover_journal` finishes (recording the outcome the crash
prevented) or rolls back before new work.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dicomgate import metrics
from dicomgate.codec.capabilities import HTJ2K_SYNTAXES
from dicomgate.codec.pool import WorkerPool
from dicomgate.conversions.estimate import DryRunEstimate
from dicomgate.conversions.journal import (
    JournalEntry,
    ParentCarried,
    ParentLevel,
    ReplaceJournal,
    sha256,
)
from dicomgate.conversions.models import UNFINISHED_STATES, ConversionJob, ConversionOutcome
from dicomgate.conversions.plan import (
    InstanceRef,
    Selection,
    select_studies,
    study_instances,
)
from dicomgate.db import session_scope
from dicomgate.errors import (
    ConversionJobNotFound,
    DicomgateError,
    NotFound,
    OrthancTimeout,
    OrthancUnavailable,
    ReplaceFailed,
)
from dicomgate.orthanc import Level, OrthancClient
from dicomgate.runtime import Runtime
from dicomgate.settings import Settings
from dicomgate.statistics.ledger import StoredRecord, record_converted

if TYPE_CHECKING:
    from dicomgate.codec.transcode import TranscodeOptions

log = logging.getLogger(__name__)

Outcome = Literal["converted", "skipped", "failed", "planned"]
REASON_TEXT: dict[str, str] = {
    "already_htj2k": "already HTJ2K",
    "no_pixel_data": "no pixel data",
    "lossy_source": "lossy source (re-encoding would not be lossless)",
    "float_pixels": "floating-point pixels",
    "bits_allocated_1": "1-bit pixels",
    "subsampled_ybr": "subsampled YBR colour",
    "unsupported_transfer_syntax": "unsupported transfer syntax",
    "codec_refused": "the encoder refused it",
    "verification_failed": "lossless verification failed",
}
STOPPING_ERRORS = (OrthancUnavailable, OrthancTimeout)
MAX_JOB_ERRORS = 50


def transcode_options(settings: Settings) -> TranscodeOptions:
    """The codec options a conversion uses (always lossless: conversions never lose data)."""
    from dicomgate.codec.transcode import TranscodeOptions

    return TranscodeOptions(target=settings.target_syntax, max_pixels=settings.max_pixels)


def reason_text(reason: str | None) -> str:
    """A person's phrase for a pass-through reason code."""
    return REASON_TEXT.get(reason or "", reason or "unknown")


# --- What Orthanc keeps per instance besides the file -----------------------------------------
# Orthanc's own instance metadata (its ServerEnumerations.cpp, ids below 1024). Orthanc writes it
# when a file is stored and refuses a PUT on it (403): only user metadata (ids 1024–65535,
# declared in Orthanc's ``UserMetadata`` option) is writable, and only that is carried over.
ORTHANC_SYSTEM_METADATA = frozenset(
    {
        "IndexInSeries",
        "ReceptionDate",
        "RemoteAET",
        "ModifiedFrom",
        "AnonymizedFrom",
        "LastUpdate",
        "Origin",
        "TransferSyntax",
        "SopClassUid",
        "RemoteIP",
        "CalledAET",
        "HttpUsername",
        "PixelDataOffset",
        "MainDicomTagsSignature",
        "MainDicomSequences",
        "PixelDataVR",
    }
)
USER_METADATA_IDS = range(1024, 65536)


@dataclass(frozen=True)
class CarryOver:
    """What this Orthanc lets a replacement carry over (detected once per run)."""

    labels: bool = False  # Orthanc ≥ 1.12 reports ``HasLabels`` in /system
    user_metadata_names: frozenset[str] | None = None  # /system ``UserMetadata`` (≥ 1.12)

    def is_user_metadata(self, name: str) -> bool:
        """True for a user-defined metadata name as ``/instances/{id}/metadata`` lists it."""
        if name.isdigit():  # user metadata without a name in the config is listed by number
            return int(name) in USER_METADATA_IDS
        if self.user_metadata_names is not None:
            return name in self.user_metadata_names
        return name not in ORTHANC_SYSTEM_METADATA


async def detect_carry_over(orthanc: OrthancClient) -> CarryOver:
    """Ask ``/system`` once per run, not each instance (1.10 has neither labels nor the list)."""
    system = await orthanc.system()
    names = system.get("UserMetadata")
    return CarryOver(
        labels=system.get("HasLabels") is True,
        user_metadata_names=frozenset(names) if isinstance(names, dict) else None,
    )


async def read_state(
    orthanc: OrthancClient, level: Level, orthanc_id: str, carry: CarryOver
) -> tuple[dict[str, str], tuple[str, ...]]:
    """The user metadata and labels Orthanc keeps on a resource (lost when it is deleted)."""
    metadata = await orthanc.metadata(level, orthanc_id)
    user = {name: str(value) for name, value in metadata.items() if carry.is_user_metadata(name)}
    labels = tuple(sorted(await orthanc.labels(level, orthanc_id))) if carry.labels else ()
    return user, labels


async def restore_state(
    orthanc: OrthancClient,
    level: Level,
    orthanc_id: str,
    user_metadata: Mapping[str, str],
    labels: Sequence[str],
) -> None:
    """Put back the journaled user metadata and labels that a resource is missing (see
    :func:`apply_carried` for why only the missing ones)."""
    if user_metadata:
        current = await orthanc.metadata(level, orthanc_id)
        for name, value in sorted(user_metadata.items()):
            if name not in current:
                await orthanc.set_metadata(level, orthanc_id, name, value)
    if labels:  # only journaled when this Orthanc has labels
        present = set(await orthanc.labels(level, orthanc_id))
        for label in labels:
            if label not in present:
                await orthanc.add_label(level, orthanc_id, label)


# --- What Orthanc keeps on the parents an instance's delete may remove ------------------------
PARENT_LEVELS: tuple[ParentLevel, ...] = ("series", "studies", "patients")
# DELETE /instances/{id} answers the nearest ancestor left: the levels below it were removed.
_REMAINING_TYPES = {"Series": 0, "Study": 1, "Patient": 2}
LEVEL_WORDS: dict[ParentLevel, str] = {
    "series": "series",
    "studies": "study",
    "patients": "patient",
}


def parents_at_risk(ref: InstanceRef, concurrency: int = 1) -> list[tuple[ParentLevel, str]]:
    """The parents whose state is read before the delete, as (level, Orthanc ID).

    A series is emptied by this run only when it has no more instances than the run replaces at
    once (its workers may delete them all at the same moment); a bigger series — the common
    case — costs no extra call. When it is that small, its study and patient are read too: the
    study's other series may have gone since the listing, and the patient's protection is what a
    loss would hurt most (recycling). A series of unknown size counts as small.
    """
    if not ref.series_id or ref.series_size > max(1, concurrency):
        return []
    parents: tuple[tuple[ParentLevel, str], ...] = (
        ("series", ref.series_id),
        ("studies", ref.study_id),
        ("patients", ref.patient_id),
    )
    return [(level, orthanc_id) for level, orthanc_id in parents if orthanc_id]


async def read_parents(
    orthanc: OrthancClient,
    ref: InstanceRef,
    carry: CarryOver,
    *,
    concurrency: int = 1,
) -> tuple[ParentCarried, ...]:
    """What Orthanc keeps on the parents the instance's delete may remove (see above)."""
    found: list[ParentCarried] = []
    for level, orthanc_id in parents_at_risk(ref, concurrency):
        try:
            user_metadata, labels = await read_state(orthanc, level, orthanc_id, carry)
            protected = level == "patients" and await orthanc.patient_protected(orthanc_id)
        except NotFound:  # gone since the listing (deleted meanwhile): nothing to carry
            continue
        found.append(
            ParentCarried(
                level=level,
                orthanc_id=orthanc_id,
                user_metadata=user_metadata,
                labels=labels,
                protected=protected,
            )
        )
    return tuple(found)


def removed_parents(answer: dict[str, object] | None) -> frozenset[ParentLevel] | None:
    """The parent levels Orthanc removed with an instance (its DELETE answer); None if unknown."""
    if answer is None or "RemainingAncestor" not in answer:
        return None
    remaining = answer["RemainingAncestor"]
    if not remaining:  # nothing left: the patient went too
        return frozenset(PARENT_LEVELS)
    kept = _REMAINING_TYPES.get(str(remaining.get("Type"))) if isinstance(remaining, dict) else None
    return None if kept is None else frozenset(PARENT_LEVELS[:kept])


def check_removed(entry: JournalEntry, removed: frozenset[ParentLevel] | None) -> None:
    """Say loudly when the delete removed a parent whose state was not read before it.

    That happens only when something else deleted the series' other instances after the run
    listed them: what Orthanc kept on that parent cannot be carried over any more.
    """
    read = {parent.level for parent in entry.parents}
    unread = [level for level in PARENT_LEVELS if level in (removed or ()) and level not in read]
    if not unread:
        return
    log.log(
        logging.ERROR if "patients" in unread else logging.WARNING,
        "Deleting instance %s also removed its %s, more than expected (its series' other "
        "instances were deleted since the run listed them?); what Orthanc kept on %s "
        "(user metadata, labels%s) was not read and is not carried over",
        entry.orthanc_id,
        ", ".join(LEVEL_WORDS[level] for level in unread),
        "it" if len(unread) == 1 else "them",
        ", the patient's protection from recycling" if "patients" in unread else "",
    )


async def apply_parents(
    orthanc: OrthancClient,
    entry: JournalEntry,
    removed: Collection[ParentLevel] | None = None,
) -> None:
    """Re-apply what is missing on the journaled parents (those in ``removed``, else all).

    The patient first (its protection guards against recycling). A parent that carried nothing
    costs no call; one the delete did not remove keeps its state and is not touched.
    """
    for parent in sorted(entry.parents, key=lambda p: PARENT_LEVELS.index(p.level), reverse=True):
        if not parent.carries or (removed is not None and parent.level not in removed):
            continue
        level, orthanc_id = parent.level, parent.orthanc_id
        if parent.protected and not await orthanc.patient_protected(orthanc_id):
            await orthanc.set_patient_protected(orthanc_id, True)
        await restore_state(orthanc, level, orthanc_id, parent.user_metadata, parent.labels)


async def apply_carried(
    orthanc: OrthancClient,
    entry: JournalEntry,
    *,
    removed: Collection[ParentLevel] | None = None,
) -> None:
    """Re-apply the journaled user metadata, labels and parents' state that are missing.

    Safe to repeat. Only missing ones: a freshly stored file has none, and a value present but
    different was set by someone after the run read it (kept; it also needs no revision, which
    Orthanc's ``CheckRevisions`` would ask for to overwrite). ``removed``: the parent levels the
    delete removed, when known (recovery and rollback do not know: every journaled parent).
    """
    await apply_parents(orthanc, entry, removed)
    await restore_state(orthanc, "instances", entry.orthanc_id, entry.user_metadata, entry.labels)


# --- The replacement of one instance ---------------------------------------------------------
async def _served(orthanc: OrthancClient, orthanc_id: str) -> bytes | None:
    try:
        return await orthanc.instance_file(orthanc_id)
    except NotFound:
        return None


async def _delete_instance(orthanc: OrthancClient, orthanc_id: str) -> dict[str, object] | None:
    """Delete an instance; Orthanc's answer (which ancestor remains), None if it was gone."""
    try:
        return await orthanc.delete("instances", orthanc_id)
    except NotFound:
        return None


async def _post_expecting(orthanc: OrthancClient, data: bytes, orthanc_id: str) -> None:
    answer = await orthanc.store_instance(data)
    status = answer.get("Status")
    if status != "Success" or answer.get("ID") != orthanc_id:
        # AlreadyStored after a delete means something else wrote the instance meanwhile: the
        # file Orthanc keeps is not the one posted, so this is never success.
        raise ReplaceFailed(
            f"Orthanc answered {status!r} (ID {answer.get('ID')}) when instance {orthanc_id} "
            "was posted; it does not hold the posted file"
        )


async def restore_original(
    orthanc: OrthancClient, journal: ReplaceJournal, entry: JournalEntry
) -> None:
    """Make Orthanc serve the journaled original again (verified by hash), then drop the entry."""
    original = await asyncio.to_thread(journal.original, entry)
    served = await _served(orthanc, entry.orthanc_id)
    if served is not None and sha256(served) != entry.original_sha256:
        await _delete_instance(orthanc, entry.orthanc_id)
        served = None
    if served is None:
        await _post_expecting(orthanc, original, entry.orthanc_id)
        served = await _served(orthanc, entry.orthanc_id)
    if served is None or sha256(served) != entry.original_sha256:
        raise ReplaceFailed(
            f"Orthanc does not serve the original of instance {entry.orthanc_id} after it was "
            f"re-posted; it stays in the journal at {journal.folder}"
        )
    await apply_carried(orthanc, entry)
    await asyncio.to_thread(journal.drop, entry.orthanc_id)


async def replace_instance(
    orthanc: OrthancClient,
    journal: ReplaceJournal,
    *,
    entry: JournalEntry,
    original: bytes,
    converted: bytes,
) -> None:
    """Journal the original, swap in the converted file, verify what Orthanc serves; or undo.

    On success the journal entry stays: the caller drops it once the outcome is recorded, so a
    crash in between is settled by recovery as "converted by this job", never miscounted.
    """
    await asyncio.to_thread(journal.record, entry, original)
    try:
        removed = removed_parents(await _delete_instance(orthanc, entry.orthanc_id))
        check_removed(entry, removed)
        await _post_expecting(orthanc, converted, entry.orthanc_id)
        served = await _served(orthanc, entry.orthanc_id)
        if served is None or sha256(served) != entry.converted_sha256:
            raise ReplaceFailed(
                f"Orthanc does not serve the converted file of instance {entry.orthanc_id}"
            )
        await apply_carried(orthanc, entry, removed=removed)
    except asyncio.CancelledError:
        raise  # the journal entry stays; recovery finishes or rolls it back
    except Exception as exc:
        log.warning("Rolling back instance %s: %s", entry.orthanc_id, exc)
        try:
            await restore_original(orthanc, journal, entry)
        except Exception as restore_exc:
            log.error(
                "Could not roll back instance %s yet (%s); the original is kept in the "
                "journal and restored at the next start",
                entry.orthanc_id,
                restore_exc,
            )
        raise


@dataclass(frozen=True)
class Recovered:
    """An unfinished replacement found in the journal and settled."""

    entry: JournalEntry
    result: Literal["finished", "untouched", "rolled_back"]


Settle = Callable[[JournalEntry], Awaitable[None]]


async def recover_journal(
    orthanc: OrthancClient, journal: ReplaceJournal, *, settle: Settle | None = None
) -> list[Recovered]:
    """Settle each journal entry: kept if Orthanc serves the converted file, else rolled back.

    ``settle`` runs for a kept conversion before its entry is dropped (the run records the
    outcome there). Carried metadata (the instance's and its journaled parents') is re-applied in
    every case: a crash may have come after a re-post and before it.
    """
    settled: list[Recovered] = []
    for entry in await asyncio.to_thread(journal.entries):
        served = await _served(orthanc, entry.orthanc_id)
        digest = sha256(served) if served is not None else None
        if digest == entry.converted_sha256:
            await apply_carried(orthanc, entry)
            if settle is not None:
                await settle(entry)
            await asyncio.to_thread(journal.drop, entry.orthanc_id)
            settled.append(Recovered(entry, "finished"))
            log.info("Recovered instance %s: the converted file is in place", entry.orthanc_id)
        elif digest == entry.original_sha256:
            await apply_carried(orthanc, entry)
            await asyncio.to_thread(journal.drop, entry.orthanc_id)
            settled.append(Recovered(entry, "untouched"))
            log.info("Recovered instance %s: the original is still in place", entry.orthanc_id)
        else:
            await restore_original(orthanc, journal, entry)
            settled.append(Recovered(entry, "rolled_back"))
            log.warning("Recovered instance %s: the original was re-posted", entry.orthanc_id)
    return settled


@dataclass(frozen=True)
class InstanceResult:
    """What happened to one instance."""

    ref: InstanceRef
    outcome: Outcome
    reason: str | None
    bytes_before: int
    bytes_after: int
    stored_transfer_syntax: str | None = None  # a converted instance's new syntax


async def convert_instance(
    orthanc: OrthancClient,
    pool: WorkerPool,
    journal: ReplaceJournal,
    ref: InstanceRef,
    *,
    options: TranscodeOptions,
    job_id: int | None = None,
    carry: CarryOver = CarryOver(),
    concurrency: int = 1,
) -> InstanceResult:
    """Convert one stored instance in place.

    A converted instance's journal entry is left for the caller to drop once the outcome is
    recorded (see :func:`replace_instance`). ``concurrency``: how many instances the run
    replaces at once (a series no bigger may be emptied by it: see :func:`parents_at_risk`).
    """
    header = await orthanc.instance_header(ref.orthanc_id)
    syntax = str(header.get("TransferSyntaxUID", ""))
    if syntax in HTJ2K_SYNTAXES:
        log.info("Skipping instance %s: already HTJ2K", ref.orthanc_id)
        return InstanceResult(ref, "skipped", "already_htj2k", ref.file_size, ref.file_size)
    original = await orthanc.instance_file(ref.orthanc_id)
    log.info("Converting instance %s (SOP Instance UID %s)", ref.orthanc_id, ref.sop_instance_uid)
    from dicomgate.codec.transcode import transcode

    result = await pool.run(transcode, original, options)
    metrics.record_transcode("conversion", result)
    if not result.converted:
        log.info("Skipping instance %s: %s", ref.orthanc_id, reason_text(result.reason))
        return InstanceResult(ref, "skipped", result.reason, len(original), len(original))
    # Read as late as possible: what is set after this read and before the delete is lost.
    user_metadata, labels = await read_state(orthanc, "instances", ref.orthanc_id, carry)
    parents = await read_parents(orthanc, ref, carry, concurrency=concurrency)
    entry = JournalEntry(
        orthanc_id=ref.orthanc_id,
        sop_instance_uid=result.sop_instance_uid,
        original_sha256=sha256(original),
        original_size=len(original),
        original_frame_crc32=tuple(result.frame_crc32),
        converted_sha256=sha256(result.data),
        converted_size=len(result.data),
        job_id=job_id,
        study_instance_uid=ref.study_instance_uid,
        user_metadata=user_metadata,
        labels=labels,
        parents=parents,
    )
    await replace_instance(orthanc, journal, entry=entry, original=original, converted=result.data)
    saved = 100.0 * (1 - len(result.data) / len(original)) if original else 0.0
    log.info(
        "Replaced instance %s: %d → %d bytes (%.1f%% saved)",
        ref.orthanc_id,
        len(original),
        len(result.data),
        saved,
    )
    return InstanceResult(
        ref, "converted", None, len(original), len(result.data), result.transfer_syntax
    )


# --- Jobs ------------------------------------------------------------------------------------
def utcnow() -> datetime.datetime:
    """Now, timezone-aware UTC (job timestamps)."""
    return datetime.datetime.now(datetime.UTC)


def selection_of(job: ConversionJob) -> Selection:
    """The selection a stored job was created with."""
    shard = None
    if job.shard:
        k, n = job.shard.split("/")
        shard = (int(k), int(n))
    return Selection(job.selector, job.selector_value, shard)  # type: ignore[arg-type]


async def create_job(
    session: AsyncSession,
    *,
    selection: Selection,
    dry_run: bool,
    sample_size: int | None = None,
) -> ConversionJob:
    """A new pending job for a selection (a dry run samples ``sample_size``; None = all)."""
    job = ConversionJob(
        selector=selection.selector,
        selector_value=selection.value,
        shard=selection.shard_text,
        dry_run=dry_run,
        state="pending",
        cancel_requested=False,
        instances_total=0,
        converted=0,
        skipped=0,
        failed=0,
        skipped_by_reason={},
        bytes_before=0,
        bytes_after=0,
        elapsed=0.0,
        errors=[],
        retried=0,
        sample_size=sample_size if dry_run else None,
    )
    session.add(job)
    await session.flush()
    return job


async def find_unfinished_job(
    session: AsyncSession, *, selection: Selection, dry_run: bool
) -> ConversionJob | None:
    """The latest unfinished job with exactly these selectors, if any."""
    query = (
        select(ConversionJob)
        .where(
            ConversionJob.state.in_(UNFINISHED_STATES),
            ConversionJob.selector == selection.selector,
            ConversionJob.dry_run == dry_run,
        )
        .order_by(ConversionJob.id.desc())
    )
    query = query.where(
        ConversionJob.selector_value.is_(None)
        if selection.value is None
        else ConversionJob.selector_value == selection.value
    )
    query = query.where(
        ConversionJob.shard.is_(None)
        if selection.shard is None
        else ConversionJob.shard == selection.shard_text
    )
    return (await session.scalars(query.limit(1))).first()


async def get_job(session: AsyncSession, job_id: int) -> ConversionJob:
    """One job by ID, or ConversionJobNotFound."""
    job = await session.get(ConversionJob, job_id)
    if job is None:
        raise ConversionJobNotFound(f"No conversion job with ID {job_id}")
    return job


async def list_jobs(session: AsyncSession, *, limit: int = 100) -> Sequence[ConversionJob]:
    """The latest jobs, newest first."""
    query = select(ConversionJob).order_by(ConversionJob.id.desc()).limit(limit)
    return (await session.scalars(query)).all()


async def request_cancel(session: AsyncSession, job_id: int) -> ConversionJob:
    """Ask a job to stop after the instances in flight (a pending job is cancelled at once)."""
    job = await get_job(session, job_id)
    if job.state in UNFINISHED_STATES:
        job.cancel_requested = True
        if job.state != "running":
            job.state = "cancelled"
            job.finished_at = utcnow()
    await session.flush()
    return job


async def done_instance_ids(session: AsyncSession, job_id: int) -> set[str]:
    """Orthanc IDs of the instances a job is done with (a failed one is retried on resume)."""
    query = select(ConversionOutcome.orthanc_id).where(
        ConversionOutcome.job_id == job_id, ConversionOutcome.outcome != "failed"
    )
    return set((await session.scalars(query)).all())


async def failed_instance_ids(session: AsyncSession, job_id: int) -> set[str]:
    """Orthanc IDs of the instances whose last attempt in a job failed."""
    query = select(ConversionOutcome.orthanc_id).where(
        ConversionOutcome.job_id == job_id, ConversionOutcome.outcome == "failed"
    )
    return set((await session.scalars(query)).all())


# --- Running a job ---------------------------------------------------------------------------
class ProgressSink(Protocol):
    """Where a run reports progress (the CLI's progress bar; nothing for the API)."""

    def started(self, *, studies: int, instances: int, already_done: int) -> None: ...

    def study(self, study_instance_uid: str) -> None: ...

    def advanced(self, result: InstanceResult) -> None: ...


@dataclass
class StudyTally:
    """Per-study counts (for the dry-run report)."""

    to_convert: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    bytes_now: int = 0
    bytes_projected: int = 0


@dataclass
class RunSummary:
    """What one run (or resumed run) of a job did."""

    job_id: int
    state: str
    dry_run: bool
    selection: str
    converted: int = 0
    skipped: int = 0
    failed: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    bytes_before: int = 0
    bytes_after: int = 0
    elapsed: float = 0.0
    instances_this_run: int = 0
    recovered: list[Recovered] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop_message: str | None = None
    studies: dict[str, StudyTally] = field(default_factory=dict)
    # Instances whose earlier attempt had failed, retried in this run, by their new outcome.
    retried: Counter[str] = field(default_factory=Counter)
    estimate: DryRunEstimate | None = None  # dry run: how the projections were obtained

    @property
    def saved_percent(self) -> float:
        return 100.0 * (1 - self.bytes_after / self.bytes_before) if self.bytes_before else 0.0

    @property
    def rate(self) -> float:
        return self.instances_this_run / self.elapsed if self.elapsed > 0 else 0.0


async def _locked_job(session: AsyncSession, job_id: int) -> ConversionJob:
    """The job, after a write that locks its row: concurrent outcome writers take turns.

    Writing first makes the counters' read-modify-write safe: PostgreSQL holds the row lock
    until commit, and SQLite's one writer starts its snapshot at the lock.
    """
    await session.execute(
        update(ConversionJob).where(ConversionJob.id == job_id).values(updated_at=func.now())
    )
    return await get_job(session, job_id)


async def _record(runtime: Runtime, job_id: int, result: InstanceResult) -> bool:
    """Store one outcome and the job's counters in one transaction; True if cancel was asked.

    A retried instance's failed outcome is replaced (its attempts counted); an outcome already
    recorded otherwise is left alone (recovery may settle what the run recorded just before).
    """
    orthanc_id = result.ref.orthanc_id
    async with session_scope(runtime.sessions) as session:
        job = await _locked_job(session, job_id)
        row = await session.scalar(
            select(ConversionOutcome).where(
                ConversionOutcome.job_id == job_id, ConversionOutcome.orthanc_id == orthanc_id
            )
        )
        if row is None:
            row = ConversionOutcome(job_id=job_id, orthanc_id=orthanc_id, attempts=1)
            session.add(row)
        elif row.outcome != "failed":
            return bool(job.cancel_requested)
        else:  # a retry: take the failed attempt out of the counters
            row.attempts += 1
            job.retried += 1
            job.failed -= 1
            job.bytes_before -= row.bytes_before
            job.bytes_after -= row.bytes_after
            if result.outcome != "failed":
                prefix = f"{orthanc_id}: "
                job.errors = [e for e in (job.errors or []) if not e.startswith(prefix)]
        row.study_instance_uid = result.ref.study_instance_uid[:64]
        row.sop_instance_uid = result.ref.sop_instance_uid[:64]
        row.outcome = result.outcome
        row.reason = (result.reason or "")[:512] or None
        row.bytes_before = result.bytes_before
        row.bytes_after = result.bytes_after
        if result.outcome in ("converted", "planned"):
            job.converted += 1
        elif result.outcome == "skipped":
            job.skipped += 1
            reasons = dict(job.skipped_by_reason or {})
            reasons[result.reason or "unknown"] = reasons.get(result.reason or "unknown", 0) + 1
            job.skipped_by_reason = reasons
        else:
            job.failed += 1
            attempt = f" (attempt {row.attempts})" if row.attempts > 1 else ""
            message = f"{orthanc_id}: {result.reason}{attempt}"
            job.errors = [*(job.errors or []), message][-MAX_JOB_ERRORS:]
        job.bytes_before += result.bytes_before
        job.bytes_after += result.bytes_after
        job.current_study = result.ref.study_instance_uid[:128]
        if result.outcome == "converted" and result.stored_transfer_syntax:
            await record_converted(session, stored_record(result))
        return bool(job.cancel_requested)


def stored_record(result: InstanceResult) -> StoredRecord:
    """A converted instance, as the storage statistics record it."""
    ref = result.ref
    return StoredRecord(
        orthanc_id=ref.orthanc_id,
        patient_orthanc_id=ref.patient_id,
        study_orthanc_id=ref.study_id,
        series_orthanc_id=ref.series_id,
        modality=ref.modality or None,
        transfer_syntax=result.stored_transfer_syntax or "",
        size_before=result.bytes_before,
        size_after=result.bytes_after,
    )


async def set_job_state(runtime: Runtime, job_id: int, **values: object) -> ConversionJob:
    """Set columns of a job in their own transaction."""
    async with session_scope(runtime.sessions) as session:
        job = await get_job(session, job_id)
        for key, value in values.items():
            setattr(job, key, value)
        return job


async def run_job(
    runtime: Runtime,
    job_id: int,
    *,
    concurrency: int = 2,
    progress: ProgressSink | None = None,
    seed: int | None = None,
) -> RunSummary:
    """Run (or resume) a job to its end: recovery first, then every instance without an outcome
    (and every one whose last attempt failed). A dry run only reads, samples and measures
    (``seed`` picks its sample; by default the job ID, so a re-run samples the same)."""
    async with session_scope(runtime.sessions) as session:
        dry_run = (await get_job(session, job_id)).dry_run
    if dry_run:
        from dicomgate.conversions.dryrun import run_dry_job

        return await run_dry_job(
            runtime,
            job_id,
            concurrency=concurrency,
            progress=progress,
            seed=job_id if seed is None else seed,
        )
    journal = ReplaceJournal(runtime.settings.journal_dir)
    with journal.exclusive() as owned:
        if not owned:
            summary = RunSummary(job_id=job_id, state="interrupted", dry_run=False, selection="")
            return await stop_run(
                runtime,
                summary,
                time.perf_counter(),
                f"another conversion is running with the journal {journal.folder}",
            )
        return await _run_job(runtime, journal, job_id, concurrency=concurrency, progress=progress)


async def _run_job(
    runtime: Runtime,
    journal: ReplaceJournal,
    job_id: int,
    *,
    concurrency: int,
    progress: ProgressSink | None,
) -> RunSummary:
    started = time.perf_counter()
    options = transcode_options(runtime.settings)
    async with session_scope(runtime.sessions) as session:
        job = await get_job(session, job_id)
        selection = selection_of(job)
        if job.state not in UNFINISHED_STATES:
            raise ConversionJobNotFound(f"Conversion job {job_id} is already {job.state}")
        job.state = "running"
        job.started_at = job.started_at or utcnow()
    summary = RunSummary(
        job_id=job_id, state="running", dry_run=False, selection=selection.describe()
    )

    async def settle(entry: JournalEntry) -> None:
        await _record_recovered(runtime, entry)

    try:
        carry = await detect_carry_over(runtime.orthanc)
        summary.recovered = await recover_journal(runtime.orthanc, journal, settle=settle)
        async with session_scope(runtime.sessions) as session:
            already = await done_instance_ids(session, job_id)
            failed_before = await failed_instance_ids(session, job_id)
        studies = await select_studies(runtime.orthanc, selection)
        todo: list[InstanceRef] = []
        total = 0
        for study in studies:
            instances = await study_instances(runtime.orthanc, study)
            total += len(instances)
            todo.extend(i for i in instances if i.orthanc_id not in already)
    except STOPPING_ERRORS as exc:
        return await stop_run(runtime, summary, started, str(exc))
    except DicomgateError as exc:
        summary.stop_message = f"Failed: {exc.message}"
        return await finish_run(runtime, summary, started, "failed", exc.message)
    await set_job_state(runtime, job_id, instances_total=total)
    if progress is not None:
        progress.started(studies=len(studies), instances=total, already_done=total - len(todo))

    queue: asyncio.Queue[InstanceRef] = asyncio.Queue()
    for ref in todo:
        queue.put_nowait(ref)
    stop: dict[str, str] = {}
    current_study: list[str] = []

    async def worker() -> None:
        while not stop and not queue.empty():
            ref = queue.get_nowait()
            if not current_study or current_study[-1] != ref.study_instance_uid:
                current_study.append(ref.study_instance_uid)
                if progress is not None:
                    progress.study(ref.study_instance_uid)
            try:
                result = await convert_instance(
                    runtime.orthanc,
                    runtime.pool,
                    journal,
                    ref,
                    options=options,
                    job_id=job_id,
                    carry=carry,
                    concurrency=concurrency,
                )
            except STOPPING_ERRORS as exc:
                stop.setdefault("reason", str(exc))
                return
            except DicomgateError as exc:
                log.error("Failed instance %s: %s", ref.orthanc_id, exc.message)
                result = InstanceResult(
                    ref, "failed", f"{exc.type}: {exc.message}", ref.file_size, ref.file_size
                )
            except Exception as exc:  # a bug: keep going, but never silently
                log.exception("Failed instance %s", ref.orthanc_id)
                result = InstanceResult(
                    ref, "failed", f"{type(exc).__name__}: {exc}", ref.file_size, ref.file_size
                )
            _tally(summary, result)
            if ref.orthanc_id in failed_before:
                summary.retried[result.outcome] += 1
            if progress is not None:
                progress.advanced(result)
            cancel = await _record(runtime, job_id, result)
            if result.outcome == "converted":  # recorded: the journal entry is no longer needed
                await asyncio.to_thread(journal.drop, ref.orthanc_id)
            if cancel:
                stop.setdefault("cancel", "cancelled on request")

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    if "reason" in stop:
        return await stop_run(runtime, summary, started, stop["reason"])
    final_state = "cancelled" if "cancel" in stop else "completed"
    return await finish_run(runtime, summary, started, final_state)


async def _record_recovered(runtime: Runtime, entry: JournalEntry) -> None:
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


async def finish_run(
    runtime: Runtime, summary: RunSummary, started: float, state: str, message: str | None = None
) -> RunSummary:
    """End a run (real or dry) in ``state``: elapsed time and final state on the job."""
    elapsed = time.perf_counter() - started
    async with session_scope(runtime.sessions) as session:
        job = await get_job(session, summary.job_id)
        job.state = state
        job.elapsed = (job.elapsed or 0.0) + elapsed
        if state != "interrupted":
            job.finished_at = utcnow()
        if message:
            job.errors = [*(job.errors or []), message][-MAX_JOB_ERRORS:]
        summary.converted, summary.skipped, summary.failed = job.converted, job.skipped, job.failed
        summary.skipped_by_reason = dict(job.skipped_by_reason or {})
        summary.bytes_before, summary.bytes_after = job.bytes_before, job.bytes_after
        summary.errors = list(job.errors or [])
    summary.state = state
    summary.elapsed = elapsed
    return summary


async def stop_run(
    runtime: Runtime, summary: RunSummary, started: float, reason: str
) -> RunSummary:
    """End a run that Orthanc's failure stopped: interrupted, resumable, with the reason."""
    message = (
        f"Stopped: {reason}. No instance is missing: unfinished replacements are kept in "
        f"the journal and settled at the next start; run again with --resume."
    )
    log.error("%s", message)
    summary.stop_message = message
    return await finish_run(runtime, summary, started, "interrupted", message)


def resolve_sample_size(settings: Settings, *, sample: int | None, exact: bool) -> int | None:
    """A dry run's sample size: None (every candidate) when exact, else asked or configured."""
    if exact:
        return None
    return sample if sample is not None else settings.conversion_sample_size


async def start_or_resume(
    runtime: Runtime,
    *,
    selection: Selection,
    dry_run: bool,
    resume: bool,
    sample: int | None = None,
    exact: bool = False,
) -> int:
    """The job a run works on: the unfinished one with these selectors (resume), else a new one."""
    async with session_scope(runtime.sessions) as session:
        if resume:
            job = await find_unfinished_job(session, selection=selection, dry_run=dry_run)
            if job is not None:
                log.info("Resuming conversion job %d (%s)", job.id, selection.for_log())
                return job.id
        job = await create_job(
            session,
            selection=selection,
            dry_run=dry_run,
            sample_size=resolve_sample_size(runtime.settings, sample=sample, exact=exact),
        )
        log.info(
            "Started conversion job %d (%s%s)",
            job.id,
            selection.for_log(),
            ", dry run" if dry_run else "",
        )
        return job.id
