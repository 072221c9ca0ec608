"""A real job spread over workers, study by study (PostgreSQL; the tasks are in :mod:`.queue`).

:func:`plan_job` lists the job's studies once, records each (``conversion_job_studies``: state
queued) with the instances it covers, and hands each to ``defer_study``. :func:`convert_study`
then converts one study, whichever worker runs it: it takes the study (its advisory lock, as
the in-process run does), settles what a dead worker left half-done in it (the journal in
PostgreSQL), converts what the job has not done yet, and marks the study done. The last study
done ends the job (:func:`settle_job`), in the same transaction that checks no study is left:
completed, or cancelled when asked. Both steps are idempotent: a planner or a study run again
(a worker killed, a stalled task retried, a resume) redoes nothing that is recorded.

Orthanc failing stops the study where it is: the job is marked interrupted with the reason and
its study stays queued; whatever resumes jobs (:mod:`.queue`) plans it again later.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import func, select

from dicomgate.conversions import repository
from dicomgate.conversions.carry import detect_carry_over
from dicomgate.conversions.journal import JournalEntry
from dicomgate.conversions.journals import open_journal
from dicomgate.conversions.lifecycle import (
    STOPPING_ERRORS,
    ProgressSink,
    begin_run,
    fail_run,
)
from dicomgate.conversions.locks import run_locks, wait_for_study
from dicomgate.conversions.models import UNFINISHED_STATES, ConversionJobStudy
from dicomgate.conversions.plan import (
    Selection,
    select_studies,
    study_instances,
)
from dicomgate.conversions.replace import recover_study
from dicomgate.conversions.run import RealRun, record_recovered, recover_legacy_folder
from dicomgate.db import session_scope
from dicomgate.errors import ConversionJobNotFound, DicomgateError, NotFound
from dicomgate.kit.clock import utcnow
from dicomgate.runtime import Runtime

log = logging.getLogger(__name__)

DeferStudy = Callable[[str], Awaitable[None]]


async def plan_job(runtime: Runtime, job_id: int, *, defer_study: DeferStudy) -> None:
    """Record the studies of a real job and defer each one not done yet (again, on a resume)."""
    try:
        begun = await begin_run(runtime, job_id, dry_run=False)
    except ConversionJobNotFound as exc:  # ended or deleted meanwhile: nothing to plan
        log.info("%s", exc.message)
        return
    try:
        journal = open_journal(runtime.engine, runtime.settings.journal_dir)
        await recover_legacy_folder(runtime, journal, _settler(runtime))
        studies = await select_studies(runtime.orthanc, begun.selection)
        totals: dict[str, int] = {}
        for study in studies:
            listed = await study_instances(runtime.orthanc, study)
            totals[study.study_instance_uid] = sum(map(begun.selection.covers, listed))
    except STOPPING_ERRORS as exc:
        await interrupt(runtime, job_id, str(exc))
        return
    except DicomgateError as exc:  # e.g. the selected study does not exist
        await fail_run(runtime, begun.summary, begun.started, exc.message)
        return
    async with session_scope(runtime.sessions) as session:
        job = await repository.locked_job(session, job_id)
        rows = {
            row.study_instance_uid: row
            for row in await session.scalars(
                select(ConversionJobStudy).where(ConversionJobStudy.job_id == job_id)
            )
        }
        for uid, total in totals.items():
            if uid not in rows:
                rows[uid] = ConversionJobStudy(
                    job_id=job_id,
                    study_instance_uid=uid,
                    state="queued",
                    instances_total=total,
                    attempts=0,
                )
                session.add(rows[uid])
        job.instances_total = sum(row.instances_total for row in rows.values())
        queued = sorted(uid for uid, row in rows.items() if row.state == "queued")
    log.info(
        "Conversion job %d: %d studies queued (%s)", job_id, len(queued), begun.selection.for_log()
    )
    for uid in queued:
        await defer_study(uid)
    if not queued:
        await settle_job(runtime, job_id)


async def convert_study(
    runtime: Runtime,
    job_id: int,
    study_instance_uid: str,
    *,
    concurrency: int,
    progress: ProgressSink | None = None,
) -> None:
    """Convert one queued study of a job; mark it done and, if it was the last, end the job."""
    async with session_scope(runtime.sessions) as session:
        try:
            job = await repository.locked_job(session, job_id)
        except ConversionJobNotFound:
            return
        row = await session.get(ConversionJobStudy, (job_id, study_instance_uid))
        if job.state not in UNFINISHED_STATES or row is None or row.state != "queued":
            return  # ended, or done by an earlier run of this task
        if job.cancel_requested:
            row.state = "cancelled"
        else:
            row.attempts += 1
            job.state = "running"
        selection = repository.selection_of(job)
        target = job.target_syntax
    if row.state == "cancelled":
        await settle_job(runtime, job_id)
        return
    journal = open_journal(runtime.engine, runtime.settings.journal_dir)
    async with run_locks(runtime.engine) as locks:
        await wait_for_study(locks, study_instance_uid)  # another worker settling it: wait
        try:
            await recover_study(
                runtime.orthanc, journal, study_instance_uid, settle=_settler(runtime)
            )
            run = RealRun.of_job(
                runtime,
                journal,
                locks,
                job_id,
                target=target,
                carry=await detect_carry_over(runtime.orthanc),
                concurrency=concurrency,
                progress=progress,
            )
            await _fill(run, selection, study_instance_uid)
        except STOPPING_ERRORS as exc:
            await interrupt(runtime, job_id, str(exc))
            return
        await asyncio.gather(*(run.worker() for _ in range(max(1, concurrency))))
        await run.written()  # every outcome recorded before the study is given back
    if run.stop_reason is not None:
        await interrupt(runtime, job_id, run.stop_reason)
        return
    async with session_scope(runtime.sessions) as session:
        row = await session.get(ConversionJobStudy, (job_id, study_instance_uid))
        if row is not None and row.state == "queued":
            row.state = "cancelled" if run.cancelled else "done"
    await settle_job(runtime, job_id)


async def _fill(run: RealRun, selection: Selection, study_instance_uid: str) -> None:
    """Queue what the job has still to do in the study (none if the study is gone), and bring
    the study's count of instances up to date (instances stored into it since it was planned)."""
    try:
        (study,) = await select_studies(run.runtime.orthanc, Selection("study", study_instance_uid))
    except NotFound:
        instances = []
    else:
        listed = await study_instances(run.runtime.orthanc, study)
        instances = [ref for ref in listed if selection.covers(ref)]
    async with session_scope(run.runtime.sessions) as session:
        already = await repository.done_instance_ids(session, run.job_id)
        run.failed_before = await repository.failed_instance_ids(session, run.job_id)
        job = await repository.locked_job(session, run.job_id)
        row = await session.get(ConversionJobStudy, (run.job_id, study_instance_uid))
        if row is not None and row.instances_total != len(instances):
            job.instances_total += len(instances) - row.instances_total
            row.instances_total = len(instances)
    for ref in instances:
        if ref.orthanc_id not in already:
            run.queue.put_nowait(ref)
            run.left[study_instance_uid] = run.left.get(study_instance_uid, 0) + 1


async def settle_job(runtime: Runtime, job_id: int) -> str | None:
    """End the job if no study of it is left queued (completed, or cancelled when asked);
    its new state, or None while studies remain (or it already ended)."""
    async with session_scope(runtime.sessions) as session:
        try:
            job = await repository.locked_job(session, job_id)
        except ConversionJobNotFound:
            return None
        if job.state not in UNFINISHED_STATES:
            return None
        left = await session.scalar(
            select(func.count()).where(
                ConversionJobStudy.job_id == job_id, ConversionJobStudy.state == "queued"
            )
        )
        if left:
            return None
        job.state = "cancelled" if job.cancel_requested else "completed"
        job.finished_at = utcnow()
        started = job.started_at or job.finished_at
        job.elapsed = max(0.0, (job.finished_at - started) / datetime.timedelta(seconds=1))
        state = job.state
    log.info("Conversion job %d %s", job_id, state)
    return state


async def interrupt(runtime: Runtime, job_id: int, reason: str) -> None:
    """Orthanc stopped the job: interrupted with the reason; planned again on the next resume."""
    message = (
        f"Stopped: {reason}. No instance is missing: unfinished replacements are kept in the "
        "journal and settled when the job resumes."
    )
    log.error("Conversion job %d: %s", job_id, message)
    async with session_scope(runtime.sessions) as session:
        try:
            job = await repository.locked_job(session, job_id)
        except ConversionJobNotFound:
            return
        if job.state in UNFINISHED_STATES:
            job.state = "interrupted"
            repository.add_error(job, message)


def _settler(runtime: Runtime) -> Callable[[JournalEntry], Awaitable[None]]:
    async def settle(entry: JournalEntry) -> None:
        await record_recovered(runtime, entry)

    return settle
