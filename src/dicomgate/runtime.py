"""The shared resources one process owns: opened by the lifespan (or the CLI), closed with it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dicomgate.codec.pool import WorkerPool
from dicomgate.db import create_engine, create_sessionmaker
from dicomgate.orthanc import OrthancClient, build_http_client
from dicomgate.settings import Settings


@dataclass
class Runtime:
    """Opened by the lifespan (or the CLI), closed with it; one per process."""

    settings: Settings
    http: httpx.AsyncClient
    orthanc: OrthancClient
    pool: WorkerPool
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]


@asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """Open the process's shared resources (HTTP client, worker pool, DB engine); close them."""
    http = build_http_client(settings)
    pool = WorkerPool(settings.workers, default_timeout=settings.transcode_timeout)
    engine = create_engine(settings.database_url)
    try:
        yield Runtime(
            settings=settings,
            http=http,
            orthanc=OrthancClient(http),
            pool=pool,
            engine=engine,
            sessions=create_sessionmaker(engine),
        )
    finally:
        await http.aclose()
        pool.close()
        await engine.dispose()
