"""Which conversion workers are alive, known at once rather than after a heartbeat timeout.

Each worker holds a PostgreSQL session advisory lock, keyed by its Procrastinate worker ID, on a
connection of its own from the moment it registers (before it takes any task) until it stops.
A process that dies (kill -9, a crash) loses its connections and PostgreSQL releases the lock
at once: a task ``doing`` whose worker's lock can be taken belongs to a dead worker and is
queued again straight away (:func:`dead_workers_tasks`). A machine that vanishes from the
network keeps its sessions until TCP gives up; heartbeats (DICOMGATE_WORKER_STALLED_AFTER)
cover that case. A live worker whose lock connection alone broke may see its task run again
elsewhere: the study's own advisory lock (:mod:`.locks`) still keeps the two apart.
"""

from __future__ import annotations

from contextlib import suppress

from procrastinate import BaseConnector
from procrastinate.manager import JobManager
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

WORKER_LOCK_SPACE = 0x574B  # the first key of a worker's liveness lock ("WK")
_KEY = "CAST(CAST(:worker AS bigint) % 2147483647 AS integer)"  # the second key: an int4


class LivenessJobManager(JobManager):
    """Procrastinate's job manager, with a liveness lock held for each worker it registers."""

    def __init__(self, connector: BaseConnector, engine: AsyncEngine) -> None:
        super().__init__(connector)
        self._engine = engine
        self._held: dict[int, AsyncConnection] = {}

    async def register_worker(self) -> int:
        worker_id = int(await super().register_worker())
        conn = await self._engine.connect()
        try:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(
                text(f"SELECT pg_advisory_lock(:space, {_KEY})"),
                {"space": WORKER_LOCK_SPACE, "worker": worker_id},
            )
        except BaseException:
            await conn.close()
            raise
        self._held[worker_id] = conn
        return worker_id

    async def unregister_worker(self, worker_id: int) -> None:
        await super().unregister_worker(worker_id)
        conn = self._held.pop(worker_id, None)
        if conn is not None:
            with suppress(DBAPIError):
                await conn.execute(
                    text(f"SELECT pg_advisory_unlock(:space, {_KEY})"),
                    {"space": WORKER_LOCK_SPACE, "worker": worker_id},
                )
            await conn.close()


async def dead_workers_tasks(engine: AsyncEngine) -> list[int]:
    """IDs of the tasks being done by workers whose liveness lock is free (they died)."""
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        rows = (
            await conn.execute(
                text(
                    "SELECT id, worker_id FROM procrastinate_jobs "
                    "WHERE status = 'doing' AND worker_id IS NOT NULL"
                )
            )
        ).all()
        dead: set[int] = set()
        for worker_id in {int(row.worker_id) for row in rows}:
            params = {"space": WORKER_LOCK_SPACE, "worker": worker_id}
            free = (
                await conn.execute(text(f"SELECT pg_try_advisory_lock(:space, {_KEY})"), params)
            ).scalar_one()
            if free:
                await conn.execute(text(f"SELECT pg_advisory_unlock(:space, {_KEY})"), params)
                dead.add(worker_id)
        return sorted(int(row.id) for row in rows if int(row.worker_id) in dead)
