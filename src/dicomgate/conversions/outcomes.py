"""Recording a run's outcomes with group commit.

Every outcome updates the job's counters, so each transaction that records one locks the job's
row until it commits: workers recording one outcome each would wait for one another, one
commit at a time. :class:`OutcomeWriter` writes instead, in one transaction, every outcome that
arrived while the previous transaction was committing (one row lock, one commit for all), then
drops the journal entries of the converted ones together. The order is the one of a single
outcome: recorded first, its journal entry dropped after; a crash in between leaves the entry,
which recovery settles as converted by the job without counting it twice (an outcome already
recorded is left alone, :func:`.repository.record_outcome`). A worker hands its outcome over
and goes on with its next instance (:meth:`OutcomeWriter.submit`); the future it gets is awaited
before the study is given back and before the run ends, and raises what the transaction raised.
A worker cancelled meanwhile leaves its outcome to the batch: written all the same (the writer is
a task of its own), or left to recovery if the loop stops first.
"""

from __future__ import annotations

import asyncio

from dicomgate.conversions import repository
from dicomgate.conversions.journals import Journal
from dicomgate.conversions.plan import InstanceResult
from dicomgate.db import session_scope
from dicomgate.runtime import Runtime

_Waiting = tuple[InstanceResult, "asyncio.Future[bool]"]


class OutcomeWriter:
    """The outcomes of one job's run, written in batches (see the module docstring)."""

    def __init__(self, runtime: Runtime, journal: Journal, job_id: int) -> None:
        self._runtime = runtime
        self._journal = journal
        self._job_id = job_id
        self._waiting: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None

    def submit(self, result: InstanceResult) -> asyncio.Future[bool]:
        """Queue one outcome for the next batch; the future is done once it is recorded (and a
        converted instance's journal entry dropped): True if a cancel was asked."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((result, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name=f"outcomes-{self._job_id}")
        return done

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                cancel = await self._write_batch([result for result, _ in batch])
            except BaseException as exc:
                failed = batch + self._waiting if isinstance(exc, asyncio.CancelledError) else batch
                for _, done in failed:
                    if not done.done():
                        done.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    self._waiting = []
                    raise
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(cancel)

    async def _write_batch(self, results: list[InstanceResult]) -> bool:
        cancel = False
        async with session_scope(self._runtime.sessions) as session:
            for result in results:
                cancel = await repository.record_outcome(session, self._job_id, result)
        converted = [r.ref.orthanc_id for r in results if r.outcome == "converted"]
        await self._journal.drop_all(converted)
        return cancel
