"""Batch conversion of stored instances to HTJ2K: start or resume a job, run it, cancel it.

The entry points the API, the CLI and the background runner share. A job is either a real
run (:mod:`.run`: replaces instances in Orthanc, safely, see :mod:`.replace`) or a dry run
(:mod:`.dryrun`: reads, samples and measures; changes nothing); :func:`run_job` picks one.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from dicomgate.conversions import repository
from dicomgate.conversions.dryrun import run_dry_job
from dicomgate.conversions.lifecycle import ProgressSink, RunSummary
from dicomgate.conversions.locks import run_locks
from dicomgate.conversions.models import UNFINISHED_STATES, ConversionJob
from dicomgate.conversions.plan import Selection
from dicomgate.conversions.run import run_real_job
from dicomgate.db import session_scope
from dicomgate.errors import JobRunningElsewhere
from dicomgate.kit.clock import utcnow
from dicomgate.runtime import Runtime
from dicomgate.settings import Settings

log = logging.getLogger(__name__)


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
    (``seed`` picks its sample; by default the job ID, so a re-run samples the same).

    One runner per job: the job's lock is taken first (:mod:`.locks`; JobRunningElsewhere when
    another process holds it) and held to the end. Taken before the job is read: a runner that
    just finished it released the lock after marking it ended, and begin_run refuses it then.
    """
    async with run_locks(runtime.engine) as locks:
        if not await locks.try_job(job_id):
            raise JobRunningElsewhere(f"Conversion job {job_id} is being run by another process")
        async with session_scope(runtime.sessions) as session:
            dry_run = (await repository.get_job(session, job_id)).dry_run
        if dry_run:
            return await run_dry_job(
                runtime,
                job_id,
                concurrency=concurrency,
                progress=progress,
                seed=job_id if seed is None else seed,
            )
        return await run_real_job(
            runtime, job_id, locks=locks, concurrency=concurrency, progress=progress
        )


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
            job = await repository.find_unfinished_job(
                session, selection=selection, dry_run=dry_run
            )
            if job is not None:
                log.info("Resuming conversion job %d (%s)", job.id, selection.for_log())
                return job.id
        job = await repository.create_job(
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


async def create_job(
    session: AsyncSession, *, selection: Selection, origin: str, target_syntax: str | None = None
) -> int:
    """A pending real job that something other than an administrator asked for (``origin``,
    e.g. "rule:<name>"); it runs once handed to whatever runs jobs. Its ID."""
    job = await repository.create_job(
        session, selection=selection, dry_run=False, origin=origin, target_syntax=target_syntax
    )
    log.info("Created conversion job %d for %s (%s)", job.id, origin, selection.for_log())
    return job.id


async def request_cancel(session: AsyncSession, job_id: int) -> ConversionJob:
    """Ask a job to stop after the instances in flight (a pending job is cancelled at once)."""
    job = await repository.get_job(session, job_id)
    if job.state in UNFINISHED_STATES:
        job.cancel_requested = True
        if job.state != "running":
            job.state = "cancelled"
            job.finished_at = utcnow()
    await session.flush()
    return job
