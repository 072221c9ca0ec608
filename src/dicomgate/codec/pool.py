"""The process pool that runs codec work off the event loop.

Built on ``pebble.ProcessPool`` rather than ``concurrent.futures.ProcessPoolExecutor`` because a
crashed worker breaks a ``ProcessPoolExecutor`` for good, and a stuck one cannot be stopped. Here a
worker that dies or runs past its time limit fails only its own task; pebble starts a fresh
worker in its place and the pool keeps serving.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import multiprocessing
import os
import resource
import sys
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Any, ParamSpec, TypeVar

from pebble import ProcessExpired, ProcessPool

from dicomgate.errors import (
    WorkerFailure,
    WorkerMemoryExceeded,
    WorkerPoolUnavailable,
    WorkerTimeout,
)

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# A worker that ran out of its address space exits with this code (the pool maps it).
MEMORY_EXIT_CODE = 86


def ping() -> int:
    """A trivial task: proves a worker can run code (used by the health check)."""
    return os.getpid()


def warm_up(modules: tuple[str, ...], linger: float) -> int:
    """Import ``modules`` in this worker (the first task otherwise pays it), then stay busy for
    ``linger`` seconds so that each of the pool's warm-up tasks lands on a different worker."""
    for name in modules:
        importlib.import_module(name)
    time.sleep(linger)
    return os.getpid()


def loaded(module: str) -> bool:
    """Whether this worker has imported ``module`` (tests of the warm-up)."""
    return module in sys.modules


def limit_memory(limit: int | None) -> None:
    """Worker initializer: cap the worker's address space (RLIMIT_AS) at ``limit`` bytes.

    Past it, allocations fail (``MemoryError``, or a decoder's own error) instead of a worker
    growing until the machine swaps or the kernel kills something else. It is the backstop
    under the codestream checks (``dicom.codestream``): a decoder bug costs one task.
    """
    if limit is not None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _guarded(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a task; a MemoryError that escapes it ends this worker (pebble starts a fresh one,
    with a whole address space) and is reported as ``WorkerMemoryExceeded``."""
    try:
        return fn(*args, **kwargs)
    except MemoryError:
        os._exit(MEMORY_EXIT_CODE)


def _gib(size: int | None) -> str:
    return "no limit" if size is None else f"{size / 1024**3:.1f} GiB"


class WorkerPool:
    """Async facade over a pebble process pool, with per-task time and memory limits."""

    def __init__(
        self,
        workers: int,
        *,
        default_timeout: float | None = None,
        memory_limit: int | None = None,
    ) -> None:
        self.workers = workers
        self.default_timeout = default_timeout
        self.memory_limit = memory_limit
        # spawn: workers never inherit the event loop, sockets or DB connections of the parent.
        self._pool = ProcessPool(
            max_workers=workers,
            context=multiprocessing.get_context("spawn"),
            initializer=limit_memory,
            initargs=(memory_limit,),
        )
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
        try:
            future = self._pool.schedule(_guarded, args=(fn, *args), kwargs=kwargs, timeout=limit)
        except (RuntimeError, OSError) as exc:  # pebble: the pool is stopped, broken, or
            # its workers cannot be started
            log.error("The worker pool cannot take a task: %s", exc)
            raise WorkerPoolUnavailable(
                "The image worker pool is not running; retry later"
            ) from None
        self._pending += 1
        try:
            return await asyncio.wrap_future(future)
        except BrokenProcessPool as exc:
            log.error("The worker pool is broken: %s", exc)
            raise WorkerPoolUnavailable("The image worker pool broke down; retry later") from None
        except FutureTimeout:
            raise WorkerTimeout(
                f"The image worker ran past its time limit of {limit:g} s and was replaced"
            ) from None
        except ProcessExpired as exc:
            if exc.exitcode == MEMORY_EXIT_CODE:
                log.warning("A worker ran out of its %s-byte address space", self.memory_limit)
                raise WorkerMemoryExceeded(
                    "Processing this image needed more memory than a worker may use "
                    f"({_gib(self.memory_limit)}, DICOMGATE_WORKER_MEMORY_LIMIT); the worker "
                    "was replaced and nothing was stored"
                ) from None
            log.warning("A worker crashed (exit code %s) and was replaced", exc.exitcode)
            raise WorkerFailure(
                f"The image worker crashed (exit code {exc.exitcode}) and was replaced"
            ) from None
        finally:
            self._pending -= 1

    def warm(self, modules: tuple[str, ...], *, linger: float = 0.5) -> asyncio.Future[list[int]]:
        """Start every worker now and import ``modules`` in each (at startup: the first
        request must not pay the spawn and the imports). Runs in the background; its failure
        is logged, and a later task gets a fresh worker as always."""

        async def one() -> int:
            return await self.run(warm_up, modules, linger, timeout=120)

        warming = asyncio.gather(*(one() for _ in range(self.workers)))

        def report(done: asyncio.Future[list[int]]) -> None:
            if not done.cancelled() and done.exception() is not None:
                log.warning("Warming the worker pool failed: %s", done.exception())

        warming.add_done_callback(report)
        return warming

    def close(self) -> None:
        """Stop the workers (running tasks are abandoned)."""
        self._pool.stop()  # type: ignore[no-untyped-call]
        self._pool.join(timeout=10)
