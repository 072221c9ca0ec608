"""The shared kit: the UTC clock, gather_or_cancel, hashing off the event loop."""

from __future__ import annotations

import asyncio
import datetime
import hashlib

import pytest

from dicomgate.errors import OrthancUnavailable
from dicomgate.kit.clock import utcnow
from dicomgate.kit.hashing import sha256, sha256_in_thread
from dicomgate.kit.tasks import gather_or_cancel


def test_the_clock_is_timezone_aware_utc() -> None:
    now = utcnow()
    assert now.tzinfo is not None and now.utcoffset() == datetime.timedelta(0)


async def test_hashing_in_a_thread_gives_the_same_digest() -> None:
    data = bytes(range(256)) * 4096
    expected = hashlib.sha256(data).hexdigest()
    assert sha256(data) == expected
    assert await sha256_in_thread(data) == expected


async def test_gather_or_cancel_returns_results_in_order() -> None:
    async def value(n: int) -> int:
        await asyncio.sleep(0.001 * (3 - n))
        return n

    assert await gather_or_cancel([value(n) for n in range(3)]) == [0, 1, 2]


async def test_gather_or_cancel_cancels_the_rest_and_raises_the_error_itself() -> None:
    cancelled = asyncio.Event()
    started = asyncio.Event()

    async def slow() -> int:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 0

    async def failing() -> int:
        await started.wait()
        raise OrthancUnavailable("down")

    with pytest.raises(OrthancUnavailable, match="down"):  # not an ExceptionGroup
        await gather_or_cancel([slow(), failing()])
    assert cancelled.is_set()
