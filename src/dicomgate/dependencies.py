"""The FastAPI dependencies that hand the process's shared resources to routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from dicomgate.codec.pool import WorkerPool
from dicomgate.db import session_scope
from dicomgate.orthanc import OrthancClient
from dicomgate.runtime import Runtime
from dicomgate.settings import Settings


# Plain lookups are ``async def``: FastAPI runs a ``def`` dependency in its thread pool, a
# thread hop per request (and per dependency) that a viewer's frame requests would all pay.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_settings(runtime: RuntimeDep) -> Settings:
    return runtime.settings


async def get_orthanc(runtime: RuntimeDep) -> OrthancClient:
    return runtime.orthanc


async def get_pool(runtime: RuntimeDep) -> WorkerPool:
    return runtime.pool


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """One session per request; committed on success, rolled back on error."""
    async with session_scope(runtime.sessions) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
OrthancDep = Annotated[OrthancClient, Depends(get_orthanc)]
PoolDep = Annotated[WorkerPool, Depends(get_pool)]
# scope="function": commit before the response is sent, so a 2xx always means "stored" (the
# default, "request", would commit after the client already has its answer).
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
