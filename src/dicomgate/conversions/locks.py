"""Who runs a job and who works on a study, across processes: PostgreSQL advisory locks.

A run holds its locks on one dedicated connection (autocommit, so no transaction stays open):
the job's lock for the whole run, and the lock of each study while it converts or settles
instances of that study. They are session locks: a process that dies (kill -9, a lost machine)
loses its connection and PostgreSQL releases them at once, so the next runner never waits for a
lease to lapse, and a live runner's locks are never taken from it. The job key is a pair
(``JOB_LOCK_SPACE``, job ID); a study's is one 64-bit hash of its StudyInstanceUID: PostgreSQL
keeps the two forms apart, so they never collide. Two UIDs that share a hash only take turns.

On SQLite (one process, as the embedded default is run) every lock is granted: the journal
folder's ``flock`` already serialises the runs of one machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

JOB_LOCK_SPACE = 0x4A0B  # the first key of a job's advisory lock ("JOB")
STUDY_WAIT = 0.5  # seconds between two tries for a study another runner holds


class RunLocks(Protocol):
    """The locks one run holds."""

    async def try_job(self, job_id: int) -> bool:
        """Take the job's lock; False if another process holds it."""
        ...

    async def try_study(self, study_instance_uid: str) -> bool:
        """Take a study's lock; False if another process holds it."""
        ...

    async def release_study(self, study_instance_uid: str) -> None:
        """Give a study's lock back (this run is done with it)."""
        ...


class LocalLocks:
    """SQLite: one process runs the jobs; every lock is granted."""

    async def try_job(self, job_id: int) -> bool:
        return True

    async def try_study(self, study_instance_uid: str) -> bool:
        return True

    async def release_study(self, study_instance_uid: str) -> None:
        return None


class AdvisoryLocks:
    """PostgreSQL session-level advisory locks on one connection owned by the run."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._turn = asyncio.Lock()  # one statement at a time on the connection
        self._studies: set[str] = set()

    async def _ask(self, sql: str, **params: object) -> bool:
        async with self._turn:
            return bool((await self._conn.execute(text(sql), params)).scalar_one())

    async def try_job(self, job_id: int) -> bool:
        return await self._ask(
            "SELECT pg_try_advisory_lock(:space, :job)", space=JOB_LOCK_SPACE, job=job_id
        )

    async def try_study(self, study_instance_uid: str) -> bool:
        if study_instance_uid in self._studies:
            return True
        taken = await self._ask(
            "SELECT pg_try_advisory_lock(hashtextextended(:uid, 0))", uid=study_instance_uid
        )
        if taken:
            self._studies.add(study_instance_uid)
        return taken

    async def release_study(self, study_instance_uid: str) -> None:
        if study_instance_uid not in self._studies:
            return
        self._studies.discard(study_instance_uid)
        await self._ask(
            "SELECT pg_advisory_unlock(hashtextextended(:uid, 0))", uid=study_instance_uid
        )


async def wait_for_study(locks: RunLocks, study_instance_uid: str) -> None:
    """Take a study's lock, waiting while another runner converts or settles it."""
    while True:
        if await locks.try_study(study_instance_uid):
            return
        await asyncio.sleep(STUDY_WAIT)


@asynccontextmanager
async def run_locks(engine: AsyncEngine) -> AsyncIterator[RunLocks]:
    """The locks of one run; on PostgreSQL all released when it ends (its connection closes)."""
    if engine.dialect.name != "postgresql":
        yield LocalLocks()
        return
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        try:
            yield AdvisoryLocks(conn)
        finally:
            # The pooled connection outlives the run: its session locks must not. (A broken
            # connection is discarded by the pool, and its locks went with its session.)
            with suppress(DBAPIError):
                await conn.execute(text("SELECT pg_advisory_unlock_all()"))
