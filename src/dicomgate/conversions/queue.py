"""Conversion jobs on a task queue shared by every process (PostgreSQL): Procrastinate.

A job is one ``plan_job`` task (lock ``job:<id>``: one planner at a time) that defers one
``convert_study`` task per study (:mod:`.studies`). A study task's lock is its
StudyInstanceUID: no two workers ever touch one study at once, whichever jobs cover it. Its
queueing lock ``<job>:<study>`` stops a study being queued twice for one job. A job's tasks go
to its own queue, ``conversion-<id>``: ``dicomgate worker`` and the service's in-process
worker take every queue, ``dicomgate convert-to-htj2k`` works on its own job's queue.

A worker killed (kill -9, a lost machine) stops sending heartbeats; after
DICOMGATE_WORKER_STALLED_AFTER its tasks are put back in the queue by whichever process sweeps
first (:meth:`QueuedJobs.sweep`) and the next worker to take the study settles what was left
half-done (the journal of originals is in PostgreSQL too). The sweep also plans again every
unfinished job that has no task left (Orthanc stopped it, or it was interrupted): the same
resume as the in-process runner's (:mod:`.background`), for many machines.

Dry runs only read: one ``plan_job`` runs them whole (:func:`.service.run_job`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from procrastinate import App, JobContext, PsycopgConnector, RetryStrategy
from procrastinate.app import WorkerOptions
from procrastinate.exceptions import AlreadyEnqueued, ProcrastinateException
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from dicomgate.conversions import repository, service, studies
from dicomgate.conversions.lifecycle import ProgressSink, RunSummary, summary_of
from dicomgate.conversions.liveness import LivenessJobManager, dead_workers_tasks
from dicomgate.conversions.models import UNFINISHED_STATES, ConversionJobStudy
from dicomgate.db import database_reason, session_scope
from dicomgate.errors import (
    ConversionJobNotFound,
    ConversionQueueUnavailable,
    DicomgateError,
    JobRunningElsewhere,
)
from dicomgate.kit.clock import utcnow
from dicomgate.runtime import Runtime

log = logging.getLogger(__name__)

QUEUE_PREFIX = "conversion-"
PLAN_TASK = "dicomgate.plan_job"
STUDY_TASK = "dicomgate.convert_study"
# A task that fails on a bug (not Orthanc: that interrupts the job) is tried again a few times.
RETRY = RetryStrategy(max_attempts=3, wait=5)
SHUTDOWN_GRACE = 10.0  # seconds a stopping worker waits for its tasks in flight
DEFER_TIMEOUT = 10.0  # seconds the API waits for the queue to take a new job


def _queue_reason(exc: BaseException) -> str:
    """Why the queue refused a task, short: the driver's first line (never SQL parameters)."""
    if isinstance(exc, TimeoutError):
        return f"no answer in {DEFER_TIMEOUT:g} s"
    if isinstance(exc, ProcrastinateException) and exc.__cause__ is not None:
        exc = exc.__cause__  # ConnectorException: the psycopg error it wraps says why
    return database_reason(exc)


def queue_of(job_id: int) -> str:
    """The queue a job's tasks go to."""
    return f"{QUEUE_PREFIX}{job_id}"


def libpq_url(database_url: str) -> str:
    """The SQLAlchemy URL (``postgresql+asyncpg://…``) as psycopg wants it."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _runtime(context: JobContext) -> Runtime:
    runtime: Runtime = context.additional_context["runtime"]
    return runtime


async def _plan_job(context: JobContext, job_id: int, concurrency: int) -> None:
    runtime = _runtime(context)
    async with session_scope(runtime.sessions) as session:
        try:
            dry_run = (await repository.get_job(session, job_id)).dry_run
        except ConversionJobNotFound:
            return
    if dry_run:
        try:
            await service.run_job(runtime, job_id, concurrency=concurrency)
        except (JobRunningElsewhere, ConversionJobNotFound) as exc:
            log.info("%s", exc.message)
        return

    async def defer_study(study_instance_uid: str) -> None:
        await defer(
            context.app, STUDY_TASK, job_id, study=study_instance_uid, concurrency=concurrency
        )

    await studies.plan_job(runtime, job_id, defer_study=defer_study)


async def _convert_study(
    context: JobContext, job_id: int, study_instance_uid: str, concurrency: int
) -> None:
    progress: ProgressSink | None = context.additional_context.get("progress")
    await studies.convert_study(
        _runtime(context), job_id, study_instance_uid, concurrency=concurrency, progress=progress
    )


def build_app(database_url: str, engine: AsyncEngine) -> App:
    """The task queue on dicomgate's PostgreSQL (opened by the caller); its workers hold a
    liveness lock on ``engine`` (:mod:`.liveness`)."""
    app = App(connector=PsycopgConnector(conninfo=libpq_url(database_url), min_size=1, max_size=4))
    app.job_manager = LivenessJobManager(app.connector, engine)
    app.task(name=PLAN_TASK, pass_context=True, retry=RETRY)(_plan_job)
    app.task(name=STUDY_TASK, pass_context=True, retry=RETRY)(_convert_study)
    return app


async def defer(
    app: App, task: str, job_id: int, *, concurrency: int, study: str | None = None
) -> bool:
    """Queue one task of a job; False when the same one is already queued (its queueing lock)."""
    if task == PLAN_TASK:
        lock, queueing_lock = f"job:{job_id}", f"plan:{job_id}"
        args: dict[str, Any] = {"job_id": job_id, "concurrency": concurrency}
    else:
        assert study is not None
        lock, queueing_lock = study, f"{job_id}:{study}"
        args = {"job_id": job_id, "study_instance_uid": study, "concurrency": concurrency}
    try:
        await app.configure_task(
            task, lock=lock, queueing_lock=queueing_lock, queue=queue_of(job_id)
        ).defer_async(**args)
    except AlreadyEnqueued:
        return False
    return True


class QueuedJobs:
    """Jobs on the task queue: start (defer), resume what has no task left, sweep stalled tasks,
    and optionally run a worker in this process."""

    def __init__(self, runtime: Runtime, app: App) -> None:
        self._runtime = runtime
        self.app = app
        self._tasks: list[asyncio.Task[Any]] = []

    async def start_job(self, job_id: int, *, concurrency: int) -> bool:
        """Queue a job (its planner); False (and nothing queued) if it is already queued."""
        return await defer(self.app, PLAN_TASK, job_id, concurrency=concurrency)

    async def start(self, job_id: int, *, concurrency: int) -> None:
        """Queue a new job's planner before answering (the API's 202 means it is queued).

        The queue refusing it (PostgreSQL failing, no answer in DEFER_TIMEOUT s) raises
        ConversionQueueUnavailable, the job marked interrupted with the reason: nothing of it
        ran, and the next sweep (:meth:`resume_unfinished`) queues it again."""
        try:
            async with asyncio.timeout(DEFER_TIMEOUT):
                await self.start_job(job_id, concurrency=concurrency)
        except (ProcrastinateException, psycopg.Error, OSError, TimeoutError) as exc:
            reason = _queue_reason(exc)
            log.error("Conversion job %d: the task queue refused it (%s)", job_id, reason)
            await self._mark_not_queued(job_id, reason)
            raise ConversionQueueUnavailable(
                f"Conversion job {job_id} was created, but the task queue could not take it "
                f"({reason}). It is marked interrupted and queued again by the next sweep of "
                "unfinished jobs; there is no need to start it again."
            ) from exc

    async def _mark_not_queued(self, job_id: int, reason: str) -> None:
        """An unfinished job the queue refused: interrupted (resumable), with the reason."""
        message = (
            f"Not queued: the task queue could not take the job ({reason}). Nothing of it ran; "
            "the next sweep of unfinished jobs (or the next start of a dicomgate process) "
            "queues it again."
        )
        try:
            async with session_scope(self._runtime.sessions) as session:
                job = await repository.get_job(session, job_id)
                if job.state in UNFINISHED_STATES:
                    job.state = "interrupted"
                    repository.add_error(job, message)
        except DicomgateError as exc:  # the database failing too: the job stays pending
            log.error("Conversion job %d could not be marked interrupted: %s", job_id, exc)

    async def live_job_ids(self) -> set[int]:
        """Jobs that have a task waiting or running (a stalled one included: it is retried)."""
        async with self._runtime.engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT DISTINCT queue_name FROM procrastinate_jobs "
                    "WHERE status IN ('todo', 'doing') AND queue_name LIKE :prefix"
                ),
                {"prefix": f"{QUEUE_PREFIX}%"},
            )
            names: Iterable[str] = rows.scalars()
            return {int(name.removeprefix(QUEUE_PREFIX)) for name in names}

    async def resume_unfinished(self, *, concurrency: int = 2) -> list[int]:
        """Queue again every unfinished job that has no task left; their IDs."""
        async with session_scope(self._runtime.sessions) as session:
            unfinished = await repository.unfinished_job_ids(session)
        live = await self.live_job_ids()
        resumed = []
        for job_id in unfinished:
            if job_id not in live and await defer(
                self.app, PLAN_TASK, job_id, concurrency=concurrency
            ):
                log.info("Resuming conversion job %d: no worker has a task of it", job_id)
                resumed.append(job_id)
        return resumed

    async def retry_stalled(self) -> int:
        """Put back in the queue the tasks of dead workers (their liveness lock is free) and of
        workers silent for too long (a machine gone from the network); how many."""
        manager = self.app.job_manager
        stalled = await manager.get_stalled_jobs(
            seconds_since_heartbeat=self._runtime.settings.worker_stalled_after
        )
        task_ids = {job.id for job in stalled if job.id is not None}
        task_ids.update(await dead_workers_tasks(self._runtime.engine))
        count = 0
        for task_id in sorted(task_ids):
            try:
                await manager.retry_job_by_id_async(job_id=task_id, retry_at=utcnow())
            except Exception as exc:  # another process retried it first
                log.debug("Task %s was not retried here: %s", task_id, exc)
                continue
            log.warning("Task %s of a dead worker is queued again", task_id)
            count += 1
        return count

    async def sweep(self) -> None:
        """One round of upkeep: stalled tasks back in the queue, then jobs with no task."""
        await self.retry_stalled()
        await self.resume_unfinished()

    def watch(self, *, every: float, concurrency: int = 2) -> None:
        """Sweep every ``every`` s (errors logged, tried again next time)."""
        self._tasks.append(asyncio.create_task(self._watch(every), name="conversion-sweep"))

    async def _watch(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Conversion upkeep failed; trying again")

    def run_worker(
        self,
        *,
        concurrency: int,
        queues: list[str] | None = None,
        progress: ProgressSink | None = None,
        install_signal_handlers: bool = False,
    ) -> asyncio.Task[None]:
        """A worker in this process (every queue unless ``queues``), as a task to cancel."""
        settings = self._runtime.settings
        options: WorkerOptions = {
            "concurrency": concurrency,
            "name": f"dicomgate-{'-'.join(queues) if queues else 'all'}",
            "additional_context": {"runtime": self._runtime, "progress": progress},
            "update_heartbeat_interval": settings.worker_heartbeat,
            "stalled_worker_timeout": settings.worker_stalled_after,
            "install_signal_handlers": install_signal_handlers,
            "delete_jobs": "successful",
            # A stop waits this long for the studies in flight, then cuts them short: safe
            # (the journal), and the task is queued again for the next worker.
            "shutdown_graceful_timeout": SHUTDOWN_GRACE,
        }
        if queues is not None:
            options["queues"] = queues
        worker = self.app.run_worker_async(**options)
        task = asyncio.create_task(worker, name="conversion-worker")
        self._tasks.append(task)
        return task

    async def stop(self) -> None:
        """Stop the sweep and the worker; tasks in flight finish first (a worker's graceful
        stop), and a study cut short is settled by whoever takes it next."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task


@asynccontextmanager
async def open_queue(runtime: Runtime) -> AsyncIterator[QueuedJobs]:
    """The task queue of this deployment's PostgreSQL, open for this block."""
    app = build_app(runtime.settings.database_url, runtime.engine)
    async with app.open_async():
        jobs = QueuedJobs(runtime, app)
        try:
            yield jobs
        finally:
            await jobs.stop()


def uses_queue(runtime: Runtime) -> bool:
    """Jobs go through the task queue (PostgreSQL) rather than run in this process (SQLite)."""
    return runtime.engine.dialect.name == "postgresql"


async def run_job_here(
    runtime: Runtime, job_id: int, *, concurrency: int, progress: ProgressSink | None = None
) -> RunSummary:
    """``convert-to-htj2k`` on PostgreSQL: queue a real job and work on its queue in this
    process (every other worker helps) until it ends or Orthanc stops it with no task left;
    the summary is the job's row (what every worker did)."""
    async with open_queue(runtime) as queue:
        before = await _job_summary(runtime, job_id)
        await queue.retry_stalled()  # e.g. left by an earlier run of this command, killed
        await queue.start(job_id, concurrency=concurrency)  # refused: ConversionQueueUnavailable
        worker = queue.run_worker(concurrency=1, queues=[queue_of(job_id)], progress=progress)
        reported = False
        sweep_every = runtime.settings.resume_conversions_every or SWEEP_DEFAULT
        next_sweep = asyncio.get_running_loop().time() + sweep_every
        while True:
            await asyncio.sleep(POLL)
            if asyncio.get_running_loop().time() >= next_sweep:
                next_sweep += sweep_every
                await queue.retry_stalled()
            summary = await _job_summary(runtime, job_id)
            if progress is not None and not reported:
                studies, instances = await _planned(runtime, job_id)
                if studies:
                    progress.started(studies=studies, instances=instances, already_done=before.done)
                    reported = True
            if summary.state not in UNFINISHED_STATES or worker.done():
                break
            if summary.state == "interrupted" and job_id not in await queue.live_job_ids():
                break
    summary.instances_this_run = summary.done - before.done
    if summary.state == "interrupted" and summary.errors:
        summary.stop_message = summary.errors[-1]
    return summary


POLL = 0.5  # seconds between two reads of a job the CLI waits for
SWEEP_DEFAULT = 30.0  # seconds between two looks for stalled tasks when resumes are off


async def _job_summary(runtime: Runtime, job_id: int) -> RunSummary:
    """The job as its row has it now (what every worker did)."""
    async with session_scope(runtime.sessions) as session:
        return summary_of(await repository.get_job(session, job_id))


async def _planned(runtime: Runtime, job_id: int) -> tuple[int, int]:
    """How many studies the job's planner recorded, and the instances they cover."""
    async with session_scope(runtime.sessions) as session:
        job = await repository.get_job(session, job_id)
        studies = await session.scalar(
            select(func.count()).where(ConversionJobStudy.job_id == job_id)
        )
        return int(studies or 0), job.instances_total
