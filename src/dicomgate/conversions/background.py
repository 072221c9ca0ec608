"""Conversion jobs the service runs in the background: resumed at start, interrupted at stop.

On SQLite (one process) :class:`BackgroundJobs` runs them in this process. On PostgreSQL they
go through the task queue every process shares (:mod:`.queue`): the service queues them and,
unless DICOMGATE_IN_PROCESS_WORKER is false, also runs a worker; :func:`conversion_runner`
picks one for the deployment.

A job interrupted anywhere (shutdown, crash, kill -9) is safe to resume: every half-done
replacement is in the journal and ``run_job`` settles it before new work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from dicomgate.conversions import repository, service
from dicomgate.conversions.locks import run_locks
from dicomgate.conversions.queue import open_queue, uses_queue
from dicomgate.db import session_scope
from dicomgate.errors import ConversionJobNotFound, JobRunningElsewhere
from dicomgate.runtime import Runtime

log = logging.getLogger(__name__)


class JobRunner(Protocol):
    """What the API, the rules and the service's lifespan ask of whatever runs jobs."""

    async def start(self, job_id: int, *, concurrency: int) -> None:
        """Start (or queue) a job; ConversionQueueUnavailable when the task queue refuses it
        (the job is then marked interrupted, and resumed by the next sweep)."""

    async def resume_unfinished(self, *, concurrency: int = 2) -> list[int]: ...

    def watch(self, *, every: float, concurrency: int = 2) -> None: ...

    async def stop(self) -> None: ...


@asynccontextmanager
async def conversion_runner(runtime: Runtime) -> AsyncIterator[JobRunner]:
    """This deployment's job runner for the block (stopped at its end)."""
    if not uses_queue(runtime):
        jobs = BackgroundJobs(runtime)
        try:
            yield jobs
        finally:
            await jobs.stop()
        return
    async with open_queue(runtime) as queued:
        if runtime.settings.in_process_worker:
            queued.run_worker(concurrency=runtime.settings.worker_concurrency)
        yield queued


class BackgroundJobs:
    """The running conversion tasks of this process (kept referenced until they end)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._tasks: dict[int, asyncio.Task[None]] = {}
        # Jobs of this process take turns: a real run holds the journal's lock for its whole
        # run, and a second one started meanwhile would stop at once as interrupted.
        self._turn = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None

    async def start(self, job_id: int, *, concurrency: int) -> None:
        """Run a job in the background unless this process already runs it (never refused:
        there is no queue to refuse it)."""
        if job_id in self._tasks:
            return
        task = asyncio.create_task(self._run(job_id, concurrency), name=f"conversion-{job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(job_id, None))

    async def _run(self, job_id: int, concurrency: int) -> None:
        try:
            async with self._turn:
                await service.run_job(self._runtime, job_id, concurrency=concurrency)
        except asyncio.CancelledError:
            raise
        except JobRunningElsewhere as exc:
            log.debug("%s: this process leaves it alone", exc.message)
        except ConversionJobNotFound as exc:  # ended (or cancelled) while it waited its turn
            log.info("%s", exc.message)
        except Exception:
            log.exception("Conversion job %d failed", job_id)

    async def resume_unfinished(self, *, concurrency: int = 2) -> list[int]:
        """Start every job a previous process left unfinished; return their ids."""
        async with session_scope(self._runtime.sessions) as session:
            ids = await repository.unfinished_job_ids(session)
        for job_id in ids:
            log.info("Resuming conversion job %d left unfinished by a previous run", job_id)
            await self.start(job_id, concurrency=concurrency)
        return ids

    def watch(self, *, every: float, concurrency: int = 2) -> None:
        """Look for unfinished jobs every ``every`` s and start them (PostgreSQL): a job whose
        runner died (its lock went with its connection) goes on here; one another live process
        runs is left to it (JobRunningElsewhere)."""
        if self._watcher is None:
            self._watcher = asyncio.create_task(
                self._watch(every, concurrency), name="conversion-watch"
            )

    async def _watch(self, every: float, concurrency: int) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                async with session_scope(self._runtime.sessions) as session:
                    ids = await repository.unfinished_job_ids(session)
                for job_id in ids:
                    await self.start(job_id, concurrency=concurrency)
            except asyncio.CancelledError:
                raise
            except Exception:  # a database outage: say so, look again next time
                log.exception("Looking for unfinished conversion jobs failed; trying again")

    async def stop(self) -> None:
        """Cancel running jobs and mark them interrupted (resumed at the next start)."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        tasks = dict(self._tasks)
        for task in tasks.values():
            task.cancel()
        for job_id, task in tasks.items():
            with contextlib.suppress(asyncio.CancelledError):
                await task
            # Its run (if it began here) released the job's lock when cancelled: a job whose
            # lock another process holds is running there, and is not this shutdown's to mark.
            async with run_locks(self._runtime.engine) as locks:
                if not await locks.try_job(job_id):
                    continue
                async with session_scope(self._runtime.sessions) as session:
                    await repository.interrupt_job(session, job_id)
            log.warning("Conversion job %d interrupted by shutdown; it resumes at start", job_id)
