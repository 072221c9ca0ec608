"""``create_app(settings)``: the FastAPI application and the lifespan that owns its resources."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from dicomgate import __version__
from dicomgate.codec.pool import WorkerPool
from dicomgate.db import create_engine, create_sessionmaker
from dicomgate.errors import install_error_handlers
from dicomgate.orthanc import OrthancClient, build_http_client
from dicomgate.runtime import Runtime
from dicomgate.settings import Settings

log = logging.getLogger(__name__)

TAGS = [
    {"name": "health", "description": "Is the service and everything it depends on working?"},
    {"name": "browse", "description": "The Orthanc Patient → Study → Series → Instance hierarchy."},
]


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


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; nothing is opened until the lifespan starts."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(settings) as runtime:
            app.state.runtime = runtime
            log.info("dicomgate %s: Orthanc at %s, %d workers", __version__,
                     settings.orthanc_url, settings.workers)
            yield

    app = FastAPIOffline(
        title="dicomgate",
        version=__version__,
        summary="Lossless HTJ2K ingest, browse and migration in front of an Orthanc PACS.",
        openapi_tags=TAGS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"],
        )
    install_error_handlers(app)

    from dicomgate.health import router as health_router

    app.include_router(health_router)
    return app
