"""Conversion jobs and outcomes in the database: every query and row update in one place.

Functions take the caller's session and only flush; the caller's session scope commits.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dicomgate.conversions.models import UNFINISHED_STATES, ConversionJob, ConversionOutcome
from dicomgate.conversions.plan import InstanceResult, Selection
from dicomgate.errors import ConversionJobNotFound
from dicomgate.statistics.ledger import StoredRecord, record_converted

MAX_JOB_ERRORS = 50  # error lines kept with a job (the latest)


def selection_of(job: ConversionJob) -> Selection:
    """The selection a stored job was created with."""
    return Selection(
        job.selector,  # type: ignore[arg-type]
        job.selector_value,
        series=tuple(job.series_ids or ()),
        instances=tuple(job.instance_ids or ()),
    )


def add_error(job: ConversionJob, message: str) -> None:
    """Append an error line to a job, keeping the latest MAX_JOB_ERRORS."""
    job.errors = [*(job.errors or []), message][-MAX_JOB_ERRORS:]


async def create_job(
    session: AsyncSession,
    *,
    selection: Selection,
    dry_run: bool,
    sample_size: int | None = None,
    origin: str | None = None,
    target_syntax: str | None = None,
) -> ConversionJob:
    """A new pending job for a selection (a dry run samples ``sample_size``; None = all).

    ``origin``: what asked for it ("rule:<name>"; None: an administrator); ``target_syntax``:
    what to convert to (None: DICOMGATE_TARGET_SYNTAX).
    """
    job = ConversionJob(
        selector=selection.selector,
        selector_value=selection.value,
        series_ids=list(selection.series) if selection.selector == "series" else None,
        instance_ids=list(selection.instances) if selection.instances else None,
        origin=origin,
        target_syntax=target_syntax,
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
    query = query.where(ConversionJob.shard.is_(None))
    return (await session.scalars(query.limit(1))).first()


async def unfinished_job_ids(session: AsyncSession) -> list[int]:
    """Every job a previous process left unfinished, oldest first."""
    query = (
        select(ConversionJob.id)
        .where(ConversionJob.state.in_(UNFINISHED_STATES))
        .order_by(ConversionJob.id)
    )
    return list(await session.scalars(query))


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


async def interrupt_job(session: AsyncSession, job_id: int) -> None:
    """Mark a job interrupted (resumed at the next start) unless it already ended."""
    job = await session.get(ConversionJob, job_id)
    if job is not None and job.state in UNFINISHED_STATES:
        job.state = "interrupted"


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


async def locked_job(session: AsyncSession, job_id: int) -> ConversionJob:
    """The job, after a write that locks its row: concurrent outcome writers take turns.

    Writing first makes the counters' read-modify-write safe: PostgreSQL holds the row lock
    until commit, and SQLite's one writer starts its snapshot at the lock.
    """
    await session.execute(
        update(ConversionJob).where(ConversionJob.id == job_id).values(updated_at=func.now())
    )
    return await get_job(session, job_id)


async def record_outcome(session: AsyncSession, job_id: int, result: InstanceResult) -> bool:
    """Store one outcome and the job's counters; True if cancel was asked.

    A retried instance's failed outcome is replaced (its attempts counted); an outcome already
    recorded otherwise is left alone (recovery may settle what the run recorded just before).
    """
    orthanc_id = result.ref.orthanc_id
    job = await locked_job(session, job_id)
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
        add_error(job, f"{orthanc_id}: {result.reason}{attempt}")
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
        file_uuid=result.stored_file_uuid,
    )
