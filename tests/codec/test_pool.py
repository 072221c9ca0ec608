"""The worker pool: a crashed or stuck worker fails only its own task and is replaced."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import pytest

from dicomgate.codec.pool import WorkerPool, loaded, ping
from dicomgate.errors import WorkerFailure, WorkerTimeout


def crash() -> None:
    """Die the way a segfaulting codec would: no exception, no cleanup."""
    os._exit(3)


def stall(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    workers = WorkerPool(1, default_timeout=30)
    yield workers
    workers.close()


async def test_crash_fails_that_task_and_a_fresh_worker_answers(pool: WorkerPool) -> None:
    first = await pool.run(ping)
    with pytest.raises(WorkerFailure, match=r"crashed \(exit code 3\) and was replaced"):
        await pool.run(crash)
    second = await pool.run(ping)
    assert second != first  # a new process
    assert pool.alive and pool.pending == 0


async def test_overrun_is_stopped_at_the_limit_and_the_pool_keeps_serving(
    pool: WorkerPool,
) -> None:
    started = time.monotonic()
    with pytest.raises(WorkerTimeout, match=r"time limit of 0\.5 s"):
        await pool.run(stall, 60, timeout=0.5)
    assert time.monotonic() - started < 10  # not the 60 s the task wanted
    assert await pool.run(stall, 0, timeout=30) == 0


async def test_warm_starts_every_worker_with_the_modules_imported() -> None:
    workers = WorkerPool(2, default_timeout=30)
    try:
        pids = await workers.warm(("pydicom",), linger=0.5)
        assert len(set(pids)) == 2  # each worker took one warm-up task
        after = await asyncio.gather(*(workers.run(loaded, "pydicom") for _ in range(4)))
        assert after == [True] * 4
        # A module nobody asked for is not there: the check can fail.
        assert not await workers.run(loaded, "dicomgate.codec.transcode")
    finally:
        workers.close()
