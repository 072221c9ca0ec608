"""A worker pool that is broken or stopped is a typed 503 (``WorkerPoolUnavailable``), never a
bare ``BrokenProcessPool`` or pebble's ``RuntimeError`` (a 500)."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from dicomgate.codec.pool import WorkerPool, ping
from dicomgate.errors import WorkerPoolUnavailable


async def test_a_pool_that_breaks_down_is_503_for_every_task() -> None:
    """pebble gives up on its pool (``BrokenProcessPool: All workers expired``) when an idle
    worker dies, e.g. killed by the kernel's OOM killer."""
    pool = WorkerPool(1, default_timeout=30)
    try:
        os.kill(await pool.run(ping), signal.SIGKILL)
        for _ in range(3):  # a task queued as it breaks, then tasks after it
            with pytest.raises(WorkerPoolUnavailable, match=r"broke down|not running") as broken:
                await pool.run(ping)
            assert broken.value.status_code == 503
            await asyncio.sleep(0.5)
        assert not pool.alive
    finally:
        pool.close()


async def test_a_stopped_pool_is_503() -> None:
    pool = WorkerPool(1, default_timeout=30)
    await pool.run(ping)
    pool.close()
    with pytest.raises(WorkerPoolUnavailable, match="not running"):
        await pool.run(ping)
