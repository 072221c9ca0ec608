"""SHA-256 of whole instances: how served files are compared with what was sent.

Hashing hundreds of megabytes takes a while: from async code call :func:`sha256_in_thread`, so
the event loop never waits on it (hashlib releases the GIL for large inputs).
"""

from __future__ import annotations

import hashlib

import anyio


def sha256(data: bytes) -> str:
    """Hex SHA-256 of a file's bytes (blocking: from threads and synchronous code)."""
    return hashlib.sha256(data).hexdigest()


async def sha256_in_thread(data: bytes) -> str:
    """Hex SHA-256 of a file's bytes, computed in a worker thread."""
    return await anyio.to_thread.run_sync(sha256, data)
