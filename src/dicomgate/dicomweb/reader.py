"""What every DICOMweb read shares: the process's caches and clients, the service's public URL,
what a request touched (for its audit row), and an ordered pipeline with bounded concurrency."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from dicomgate.audit.context import Touched
from dicomgate.codec.pool import WorkerPool
from dicomgate.db import session_scope
from dicomgate.dicomweb.catalog import (
    DetailsCache,
    SeriesIdentities,
    StoredInstance,
    list_instances,
)
from dicomgate.dicomweb.framesource import FrameSources
from dicomgate.dicomweb.lookup import InstanceLookup, lookup_instance
from dicomgate.errors import DatabaseUnavailable
from dicomgate.orthanc import OrthancClient
from dicomgate.settings import Settings
from dicomgate.statistics.ledger import recorded_syntaxes

T = TypeVar("T")
log = logging.getLogger(__name__)


def service_url(request: HTTPConnection, settings: Settings) -> str:
    """The DICOMweb base URL clients reach: ``DICOMGATE_DICOMWEB_PUBLIC_URL``, else the
    request's scheme and Host (uvicorn's proxy headers applied) + ``/dicomweb``."""
    if settings.dicomweb_public_url:
        return settings.dicomweb_public_url.rstrip("/")
    return str(request.base_url).rstrip("/") + "/dicomweb"


def _ignore(_: Touched) -> None:
    return None


@dataclass
class Reader:
    """One request's view of the shared resources, and the service URL it was called at."""

    orthanc: OrthancClient
    pool: WorkerPool
    settings: Settings
    cache: DetailsCache
    series: SeriesIdentities
    base_url: str  # e.g. https://pacs.example.org/dicomweb
    lookup: InstanceLookup = field(default_factory=InstanceLookup)
    sources: FrameSources = field(default_factory=FrameSources)
    # Names what the request touched on its audit row, as soon as it is known (so a request
    # that fails later is still recorded with what it asked for).
    touch: Callable[[Touched], None] = _ignore
    # Where dicomgate recorded the syntax of the files it stored (``stored_instances``).
    sessions: async_sessionmaker[AsyncSession] | None = None

    async def recorded(self, files: dict[str, str]) -> dict[str, str]:
        """The syntaxes dicomgate recorded of these very files (``catalog.Recorded``); none
        when the database cannot say (the files' headers are read instead)."""
        if self.sessions is None:
            return {}
        try:
            async with session_scope(self.sessions) as session:
                return await recorded_syntaxes(session, files)
        except (SQLAlchemyError, OSError, DatabaseUnavailable) as exc:
            log.warning("Recorded transfer syntaxes not read (%s)", type(exc).__name__)
            return {}

    @property
    def concurrency(self) -> int:
        return self.settings.orthanc_concurrency

    def study_url(self, study_uid: str) -> str:
        return f"{self.base_url}/studies/{study_uid}"

    def series_url(self, study_uid: str, series_uid: str) -> str:
        return f"{self.study_url(study_uid)}/series/{series_uid}"

    def instance_url(self, study_uid: str, series_uid: str, sop_uid: str) -> str:
        return f"{self.series_url(study_uid, series_uid)}/instances/{sop_uid}"


async def touch_instances(
    reader: Reader, instances: Sequence[StoredInstance], *, per_instance: bool
) -> None:
    """Note the patients, studies and series of the instances (and, ``per_instance``, each SOP
    Instance UID and Orthanc ID; else the series' Orthanc IDs) as touched."""
    series_ids = list(dict.fromkeys(i.series_orthanc_id for i in instances))
    patients = [(await reader.series.get(reader.orthanc, s)).patient_id for s in series_ids]
    touched = Touched(
        patient_ids=patients,
        study_instance_uids=list(dict.fromkeys(i.study_uid for i in instances)),
        series_instance_uids=list(dict.fromkeys(i.series_uid for i in instances)),
        sop_instance_uids=[i.sop_uid for i in instances] if per_instance else [],
        orthanc_ids=[i.orthanc_id for i in instances] if per_instance else series_ids,
    )
    reader.touch(touched)


async def instances_at(
    reader: Reader,
    *,
    study_uid: str,
    series_uid: str | None = None,
    sop_uid: str | None = None,
) -> list[StoredInstance]:
    """The stored instances a URL names: a study's, a series', or one (404 when none)."""
    if sop_uid is not None:
        assert series_uid is not None
        return await lookup_instance(
            reader.orthanc,
            reader.series,
            reader.lookup,
            study_uid=study_uid,
            series_uid=series_uid,
            sop_uid=sop_uid,
        )
    return await list_instances(reader.orthanc, study_uid=study_uid, series_uid=series_uid)


async def ordered(calls: Iterable[Callable[[], Awaitable[T]]], *, window: int) -> AsyncIterator[T]:
    """Results of ``calls`` in order, at most ``window`` running ahead of the consumer (so a
    2,000-instance answer holds a handful of results, never all of them)."""
    pending: deque[asyncio.Task[T]] = deque()
    source = iter(calls)

    def start_next() -> None:
        call = next(source, None)
        if call is not None:
            pending.append(asyncio.ensure_future(call()))

    try:
        for _ in range(max(1, window)):
            start_next()
        while pending:
            result = await pending.popleft()
            start_next()
            yield result
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
