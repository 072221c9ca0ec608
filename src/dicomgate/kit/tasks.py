"""Running awaitables together: the first failure cancels the others."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import TypeVar

T = TypeVar("T")


async def gather_or_cancel(aws: Sequence[Awaitable[T]]) -> list[T]:
    """Run all; on the first exception cancel the rest, wait for them, and re-raise it.

    Unlike ``asyncio.TaskGroup`` the caller gets the exception itself, not an ExceptionGroup,
    so ``except OrthancFailure`` and the error handler work unchanged.
    """
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
