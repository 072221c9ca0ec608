"""The shared resources one process owns: opened by the lifespan (or the CLI), closed with it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dicomgate.codec.pool import WorkerPool
from dicomgate.db import create_engine, create_sessionmaker
from dicomgate.orthanc import OrthancClient
from dicomgate.orthancfiles import FileFetcher
from dicomgate.requestid import propagate_to_orthanc
from dicomgate.settings import Settings

ORTHANC_KEEPALIVE_EXPIRY = 0.5
"""Seconds an idle connection to Orthanc is kept: half of Orthanc's own idle close (1 s)."""


def build_http_client(settings: Settings) -> httpx.AsyncClient:
    """The process's one pooled client to Orthanc (keep-alive, bounded pool, timeouts)."""
    return httpx.AsyncClient(
        base_url=settings.orthanc_url,
        auth=settings.orthanc_auth,
        timeout=httpx.Timeout(settings.orthanc_timeout, connect=settings.orthanc_connect_timeout),
        limits=httpx.Limits(
            max_connections=settings.orthanc_max_connections,
            max_keepalive_connections=settings.orthanc_max_connections,
            # Orthanc (CivetWeb) closes a connection idle for about 1 s (sooner under load): one
            # kept longer can be closed just as it is reused. OrthancClient sends a read once
            # more when that happens; the short expiry makes it rare.
            keepalive_expiry=ORTHANC_KEEPALIVE_EXPIRY,
        ),
        headers={"User-Agent": "dicomgate"},
        event_hooks={"request": [propagate_to_orthanc]},
    )


@dataclass
class Runtime:
    """Opened by the lifespan (or the CLI), closed with it; one per process."""

    settings: Settings
    http: httpx.AsyncClient
    orthanc: OrthancClient
    pool: WorkerPool
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    files: FileFetcher | None = None  # the aiohttp GET of stored files (inside ``orthanc``)


@asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """Open the process's shared resources (HTTP client, worker pool, DB engine); close them."""
    http = build_http_client(settings)
    files = FileFetcher.for_url(
        settings.orthanc_url,
        auth=settings.orthanc_auth,
        timeout=settings.orthanc_timeout,
        connect_timeout=settings.orthanc_connect_timeout,
        max_connections=settings.orthanc_max_connections,
        keepalive_expiry=ORTHANC_KEEPALIVE_EXPIRY,
    )
    pool = WorkerPool(
        settings.workers,
        default_timeout=settings.transcode_timeout,
        memory_limit=settings.worker_memory_bytes,
    )
    engine = create_engine(settings.database_url)
    try:
        yield Runtime(
            settings=settings,
            http=http,
            orthanc=OrthancClient(http, files),
            pool=pool,
            engine=engine,
            sessions=create_sessionmaker(engine),
            files=files,
        )
    finally:
        await http.aclose()
        if files is not None:
            await files.aclose()
        pool.close()
        await engine.dispose()
