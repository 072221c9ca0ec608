"""Audit rows are written in group commits, and none is lost on the way: every queued row is
written at shutdown, a reader of the trail sees every row recorded before it, and a row that
cannot be written loses only itself (logged and counted), never the rows committed with it."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
from pathlib import Path

import pytest
from sqlalchemy import select

from dicomgate.audit.models import AuditEvent, AuditEventSubject
from dicomgate.audit.service import AuditEntry
from dicomgate.audit.trail import AuditTrail
from dicomgate.db import create_engine, create_sessionmaker, session_scope
from dicomgate.migrations import upgrade_database
from dicomgate.settings import Settings
from tests.audit.test_failures_and_clients import FAILURES, app_on, counter
from tests.databases import KINDS, fresh_database
from tests.orthanc_process import OrthancProcess

# Long enough that only a flush (a reader, health, shutdown) writes what is queued.
NEVER = 3600.0


def entry(number: int, **resource: object) -> AuditEntry:
    return AuditEntry(
        at=datetime.datetime.now(datetime.UTC),
        actor=f"user-{number}",
        action="dicomweb_read",
        method="GET",
        route="/dicomweb/studies/{study_instance_uid}",
        client="127.0.0.1",
        status_code=200,
        resource={"patient_ids": [f"P{number}"], "study_instance_uids": [f"1.2.{number}"]}
        | resource,
    )


async def rows(url: str) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(actor, resource JSON, subjects) of every row, in the order written."""
    engine = create_engine(url)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            events = list(await session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
            subjects = list(await session.scalars(select(AuditEventSubject)))
    finally:
        await engine.dispose()
    by_event: dict[int, list[tuple[str, str]]] = {}
    for s in subjects:
        by_event.setdefault(s.event_id, []).append((s.kind, s.value))
    return [(e.actor, e.resource, sorted(by_event.get(e.id, []))) for e in events]


async def migrated(kind: str, tmp_path: Path, settings: Settings, url: str) -> Settings:
    own = settings.model_copy(update={"database_url": url, "workers": 1})
    await asyncio.to_thread(upgrade_database, own)
    return own


@pytest.mark.parametrize("kind", KINDS)
async def test_rows_recorded_together_are_all_written_in_order_with_their_subjects(
    kind: str, settings: Settings, tmp_path: Path
) -> None:
    async with fresh_database(kind, tmp_path, prefix="auditbatch") as url:
        await migrated(kind, tmp_path, settings, url)
        engine = create_engine(url)
        trail = AuditTrail(create_sessionmaker(engine), linger=0.05)
        trail.start()
        try:
            await asyncio.gather(*(trail.record(entry(n)) for n in range(40)))
            await trail.flush()
            assert trail.queued == 0 and trail.healthy
        finally:
            await trail.stop()
            await engine.dispose()

        written = await rows(url)
        assert [actor for actor, _, _ in written] == [f"user-{n}" for n in range(40)]
        assert [subjects for _, _, subjects in written] == [
            [("patient", f"P{n}"), ("study", f"1.2.{n}")] for n in range(40)
        ]


@pytest.mark.parametrize("kind", KINDS)
async def test_shutdown_writes_every_queued_row(
    kind: str, settings: Settings, tmp_path: Path, orthanc: OrthancProcess
) -> None:
    async with fresh_database(kind, tmp_path, prefix="auditstop") as url:
        own = await migrated(kind, tmp_path, settings, url)
        async with app_on(own) as (app, client):
            app.state.audit_trail.linger = NEVER  # the writer waits: only shutdown writes
            for _ in range(3):
                assert (await client.get("/api/ris/patients/")).status_code == 200
            await asyncio.sleep(0)  # the writer is now lingering on the first row
            assert app.state.audit_trail.queued == 3
        # The lifespan has ended: what was queued is in the database.
        written = await rows(url)
        assert len(written) == 3
        assert all(actor.startswith("anonymous") for actor, _, _ in written)


async def test_a_reader_of_the_trail_sees_every_row_recorded_before_it(
    settings: Settings, tmp_path: Path, orthanc: OrthancProcess
) -> None:
    async with fresh_database("sqlite", tmp_path, prefix="auditread") as url:
        own = await migrated("sqlite", tmp_path, settings, url)
        async with app_on(own) as (app, client):
            app.state.audit_trail.linger = NEVER
            assert (await client.get("/api/ris/patients/")).status_code == 200
            answer = await client.get("/api/ris/audit/", params={"action": "patient_read"})
            assert answer.status_code == 200
            assert [e["action"] for e in answer.json()["events"]] == ["patient_read"]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_row_that_cannot_be_written_loses_only_itself(
    kind: str,
    settings: Settings,
    tmp_path: Path,
    orthanc: OrthancProcess,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with fresh_database(kind, tmp_path, prefix="auditbad") as url:
        own = await migrated(kind, tmp_path, settings, url)
        async with app_on(own) as (app, client):
            trail: AuditTrail = app.state.audit_trail
            trail.linger = NEVER
            before = counter((await client.get("/metrics")).text, FAILURES)
            # A resource that cannot be serialised fails its row, the last of a batch of five
            # (last: health reports the last write, and a later good row heals it).
            batch = [entry(1), entry(2), entry(3), entry(4), entry(5, bad=object())]
            with caplog.at_level(logging.ERROR, logger="dicomgate.audit"):
                for item in batch:
                    await trail.record(item)
                health = await client.get("/api/ris/health/")  # flushes, then reports
            assert health.status_code == 503
            assert health.json()["audit"]["ok"] is False
            [lost] = [r for r in caplog.records if "AUDIT ROW LOST" in r.getMessage()]
            assert "GET /dicomweb/studies/{study_instance_uid} (dicomweb_read, status 200)" in (
                lost.getMessage()
            )
            metrics_text = (await client.get("/metrics")).text
            assert counter(metrics_text, FAILURES) == before + 1
            # The next row is written: healthy again.
            await trail.record(entry(6))
            assert (await client.get("/api/ris/health/")).status_code == 200

        written = [(a, json.loads(r)) for a, r, _ in await rows(url) if a.startswith("user-")]
        assert [a for a, _ in written] == ["user-1", "user-2", "user-3", "user-4", "user-6"]
