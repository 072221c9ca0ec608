"""The process pool that runs codec work off the event loop.

Built on ``pebble.ProcessPool`` rather than ``concurrent.futures.ProcessPoolExecutor`` because a
crashed worker breaks a ``ProcessPoolExecutor`` for good, and a stuck one cannot be stopped. Here a
worker that dies or runs past its time limit fails only its own task; pebble starts a fresh
worker in its place and the pool keeps serving.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, ParamSpec, TypeVar

from pebble import ProcessExpired, ProcessPool

from dicomgate.errors import WorkerFailure, WorkerTimeout

P = ParamSpec("P")
T = TypeVar("T")


def ping() -> int:
    """A trivial task: proves a worker can run code (used by the health check)."""
    return os.getpid()


class WorkerPool:
    """Async facade over a pebble process pool, with per-task time limits."""

    def __init__(self, workers: int, *, default_timeout: float | None = None) -> None:
        self.workers = workers
        self.default_timeout = default_timeout
        # spawn: workers never inherit the event loop, sockets or DB connections of the parent.
        self._pool = ProcessPool(max_workers=workers, context=multiprocessing.get_context("spawn"))
        self._pending = 0

    @property
    def pending(self) -> int:
        """Tasks submitted and not yet finished (queue depth + running)."""
        return self._pending

    @property
    def alive(self) -> bool:
        return bool(self._pool.active)

    async def run(
        self,
        fn: Callable[..., T],
        *args: Any,
        timeout: float | None = None,  # noqa: ASYNC109 (pebble kills the worker at it)
        **kwargs: Any,
    ) -> T:
        """Run ``fn(*args, **kwargs)`` in a worker; a crash or overrun fails this task only."""
        limit = timeout if timeout is not None else self.default_timeout
        future = self._pool.schedule(fn, args=args, kwargs=kwargs, timeout=limit)
        self._pending += 1
        try:
            return await asyncio.wrap_future(future)
        except FutureTimeout:
            raise WorkerTimeout(
                f"The image worker ran past its time limit of {limit:g} s and was replaced"
            ) from None
        except ProcessExpired as exc:
            raise WorkerFailure(
                f"The image worker crashed (exit code {exc.exitcode}) and was replaced"
            ) from None
        finally:
            self._pending -= 1

    def close(self) -> None:
        """Stop the workers (running tasks are abandoned)."""
        self._pool.stop()  # type: ignore[no-untyped-call]
        self._pool.join(timeout=10)
