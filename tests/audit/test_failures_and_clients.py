"""An audit row that cannot be written is never silent; the client address is the socket peer
unless a trusted proxy forwarded it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from dicomgate.app import create_app
from dicomgate.db import create_engine
from dicomgate.migrations import upgrade_database
from dicomgate.settings import Settings
from tests.databases import KINDS, fresh_database
from tests.dicomgate_process import start_dicomgate, stop_dicomgate
from tests.orthanc_process import OrthancProcess

FAILURES = "dicomgate_audit_write_failures_total"
FORWARDED = {"X-Forwarded-For": "203.0.113.7"}


@asynccontextmanager
async def app_on(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://dicomgate.test") as c:
            yield application, c


async def execute(url: str, sql: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


def counter(metrics_text: str, name: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in /metrics")


@pytest.mark.parametrize("kind", KINDS)
async def test_a_lost_audit_row_is_logged_counted_and_turns_health_503(
    kind: str,
    settings: Settings,
    tmp_path: Path,
    orthanc: OrthancProcess,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with fresh_database(kind, tmp_path, prefix="audit") as url:
        own = settings.model_copy(update={"database_url": url, "workers": 1})
        await asyncio.to_thread(upgrade_database, own)
        async with app_on(own) as (_app, client):
            assert (await client.get("/api/ris/health/")).status_code == 200
            before = counter((await client.get("/metrics")).text, FAILURES)
            await execute(url, "ALTER TABLE audit_events RENAME TO audit_events_away")
            try:
                with caplog.at_level(logging.ERROR, logger="dicomgate.audit"):
                    answer = await client.get("/api/ris/patients/")
                health = await client.get("/api/ris/health/")
                metrics_text = (await client.get("/metrics")).text
            finally:
                await execute(url, "ALTER TABLE audit_events_away RENAME TO audit_events")

            assert answer.status_code == 200  # the answer is not changed by the lost row
            [record] = [r for r in caplog.records if "AUDIT ROW LOST" in r.getMessage()]
            assert record.levelno == logging.ERROR
            assert "GET /api/ris/patients/ (patient_read, status 200)" in record.getMessage()
            assert counter(metrics_text, FAILURES) == before + 1
            assert health.status_code == 503
            assert health.json()["audit"] == {
                "ok": False,
                # SQLite's "no such table" is an OperationalError, which db.py maps to
                # DatabaseUnavailable; PostgreSQL's is a ProgrammingError, not mapped.
                "detail": "the last audit row could not be written (DatabaseUnavailable)"
                if kind == "sqlite"
                else "the last audit row could not be written (ProgrammingError)",
            }
            # The next row is written: healthy again.
            assert (await client.get("/api/ris/patients/")).status_code == 200
            assert (await client.get("/api/ris/health/")).status_code == 200


class TestClientAddress:
    async def last_client(self, client: httpx.AsyncClient) -> str:
        await client.get("/api/ris/patients/", headers=FORWARDED)
        events = (await client.get("/api/ris/audit/", params={"action": "patient_read"})).json()
        return str(events["events"][0]["client"])

    async def test_the_socket_peer_unless_a_trusted_proxy_forwarded_it(
        self, settings: Settings
    ) -> None:
        # httpx's ASGI transport connects from 127.0.0.1.
        async with app_on(settings) as (_app, client):
            assert await self.last_client(client) == "127.0.0.1"
        trusting = settings.model_copy(update={"trusted_proxies": ["127.0.0.1"]})
        async with app_on(trusting) as (_app, client):
            assert await self.last_client(client) == "203.0.113.7"
        other_proxy = settings.model_copy(update={"trusted_proxies": ["10.0.0.0/8"]})
        async with app_on(other_proxy) as (_app, client):
            assert await self.last_client(client) == "127.0.0.1"

    def test_the_setting_takes_a_json_list_or_commas(self) -> None:
        assert Settings(trusted_proxies="10.0.0.5, 10.1.0.0/16").trusted_proxies == [
            "10.0.0.5",
            "10.1.0.0/16",
        ]
        assert Settings(trusted_proxies='["10.0.0.5"]').trusted_proxies == ["10.0.0.5"]
        assert Settings().trusted_proxies == []

    def test_dicomgate_serve_ignores_x_forwarded_for_from_loopback(
        self, orthanc: OrthancProcess, tmp_path: Path
    ) -> None:
        """uvicorn alone would trust X-Forwarded-For from 127.0.0.1; `dicomgate serve` must not."""
        proc, url = start_dicomgate(orthanc.url, tmp_path)
        try:
            httpx.get(f"{url}/api/ris/patients/", headers=FORWARDED, timeout=30)
            events = httpx.get(
                f"{url}/api/ris/audit/", params={"action": "patient_read"}, timeout=30
            ).json()["events"]
        finally:
            stop_dicomgate(proc)
        assert events[0]["client"] == "127.0.0.1"
