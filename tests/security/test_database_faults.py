"""Database faults on a real SQLite file (issue 12 item 7): a deleted, read-only or full
database is a 503 that says why (never a 201 that is lost, never a bare 500), health checks
that the database is writable, and ``dicomgate apikey revoke`` reaches the service's database
(and the running service refuses the key at once)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from dicomgate.app import create_app
from dicomgate.errors import DatabaseNotMigrated, DatabaseUnavailable
from dicomgate.migrations import upgrade_database
from dicomgate.settings import Settings
from tests.dicomgate_process import start_dicomgate, stop_dicomgate
from tests.orthanc_process import OrthancProcess

PATIENT = {"family_name": "Doe", "given_name": "Jane", "gender": "female"}
HEALTH = "/api/ris/health/"


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], check=True, capture_output=True)


@asynccontextmanager
async def app_on(settings: Settings, db: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The app on the SQLite file ``db`` (already migrated), with its real lifespan."""
    app = create_app(
        settings.model_copy(update={"database_url": f"sqlite+aiosqlite:///{db}", "workers": 1})
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def migrated(settings: Settings, db: Path) -> None:
    on = settings.model_copy(update={"database_url": f"sqlite+aiosqlite:///{db}"})
    await asyncio.to_thread(upgrade_database, on)


class TestDeletedWhileRunning:
    async def test_writes_are_refused_not_lost(
        self, settings: Settings, orthanc: OrthancProcess, tmp_path: Path
    ) -> None:
        db = tmp_path / "dicomgate.db"
        await migrated(settings, db)
        async with app_on(settings, db) as client:
            assert (await client.put("/api/ris/patients/P779/", json=PATIENT)).status_code == 201
            db.unlink()  # what an operator's rm does; the open connection keeps the old inode
            r = await client.put("/api/ris/patients/P780/", json=PATIENT)
            assert r.status_code == 503, r.text
            assert r.json()["type"] == "DatabaseUnavailable"
            assert r.json()["error"] == (
                f"The SQLite database file {db} was deleted or replaced while dicomgate was "
                "running; nothing was written. Restore it and restart dicomgate."
            )
            health = await client.get(HEALTH)
            assert health.status_code == 503
            assert health.json()["database"]["ok"] is False
            assert "was deleted or replaced" in health.json()["database"]["detail"]
        assert not db.exists()  # nothing re-created an empty database at that path
        with pytest.raises(DatabaseNotMigrated, match="has no dicomgate schema"):
            async with app_on(settings, db):
                pytest.fail("started on a missing database")


@pytest.fixture
def read_only_view(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(writable folder, the same folder bind-mounted read-only)."""
    source, view = tmp_path / "rw", tmp_path / "ro"
    source.mkdir()
    view.mkdir()
    mount("--bind", str(source), str(view))
    try:
        mount("-o", "remount,bind,ro", str(view))
        yield source, view
    finally:
        umount(view)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk))
    try:
        yield disk
    finally:
        umount(disk)


class TestUnwritable:
    async def test_a_read_only_database_is_refused_at_start_saying_why(
        self,
        settings: Settings,
        orthanc: OrthancProcess,
        read_only_view: tuple[Path, Path],
    ) -> None:
        """(As root, nothing can make an open SQLite file read-only under a running service:
        a bind mount cannot be remounted read-only while files on it are open for writing.
        A full disk, below, is how a running service meets an unwritable database.)"""
        source, view = read_only_view
        await migrated(settings, source / "dicomgate.db")
        with pytest.raises(DatabaseUnavailable) as refused:
            async with app_on(settings, view / "dicomgate.db"):
                pytest.fail("started on a read-only database")
        assert refused.value.message.startswith(f"The database {view / 'dicomgate.db'} cannot be")
        assert "must be able to read and write it" in refused.value.message

    async def test_a_full_disk_is_503_with_the_drivers_reason(
        self, settings: Settings, orthanc: OrthancProcess, small_disk: Path
    ) -> None:
        db = small_disk / "dicomgate.db"
        await migrated(settings, db)
        async with app_on(settings, db) as client:
            assert (await client.put("/api/ris/patients/P782/", json=PATIENT)).status_code == 201
            with (small_disk / "filler").open("wb", buffering=0) as out, pytest.raises(OSError):
                while True:
                    out.write(b"\0" * 65536)
            many = {**PATIENT, "family_name": "D" * 60}
            answers = [
                await client.put(f"/api/ris/patients/P9{i:04d}/", json=many) for i in range(200)
            ]
            refused = [a for a in answers if a.status_code != 201]
            assert refused, "200 upserts fitted on a full disk"
            assert {a.status_code for a in refused} == {503}
            assert refused[0].json()["type"] == "DatabaseUnavailable"
            assert "database or disk is full" in refused[0].json()["error"]
            health = await client.get(HEALTH)
            assert health.status_code == 503
            assert health.json()["database"] == {
                "ok": False,
                "detail": "sqlite not writable: database or disk is full",
            }


class TestApiKeyRevoke:
    def test_revoke_reaches_the_services_database_and_the_key_is_refused_at_once(
        self, orthanc: OrthancProcess, tmp_path: Path
    ) -> None:
        auth = {
            "DICOMGATE_AUTH_ENABLED": "true",
            "DICOMGATE_JWT_SECRET": "x" * 40,
            "DICOMGATE_JWT_AUDIENCE": "dicomgate",
        }
        proc, base = start_dicomgate(orthanc.url, tmp_path, env=auth)
        cli_env = {
            **os.environ,
            **auth,
            "DICOMGATE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'dicomgate.db'}",
        }

        def cli(*args: str, cwd: Path = tmp_path) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "dicomgate.cli", "apikey", *args],
                env=cli_env,
                cwd=cwd,
                capture_output=True,
                text=True,
                timeout=60,
            )

        try:
            created = cli("create", "--name", "router", "--scopes", "dicom:read")
            assert created.returncode == 0, created.stdout + created.stderr
            found = re.search(r"store it now\): (\S+)", created.stdout)
            assert found is not None
            key = {"X-API-Key": found.group(1)}
            assert httpx.get(f"{base}/api/orthanc/patients/", headers=key).status_code == 200
            revoked = cli("revoke", "--name", "router")
            assert revoked.returncode == 0, revoked.stdout + revoked.stderr
            r = httpx.get(f"{base}/api/orthanc/patients/", headers=key)
            assert r.status_code == 401
            assert r.json()["error"] == "The API key is invalid or revoked"
        finally:
            stop_dicomgate(proc)

    def test_revoke_against_another_database_says_which_and_creates_nothing(
        self, tmp_path: Path
    ) -> None:
        """The CLI's database is not the service's (another DICOMGATE_DATABASE_URL, or
        another working folder for the relative default): a clear refusal, no traceback, and
        no empty database file left behind."""
        env = {k: v for k, v in os.environ.items() if k != "DICOMGATE_DATABASE_URL"}
        proc = subprocess.run(
            [sys.executable, "-m", "dicomgate.cli", "apikey", "revoke", "--name", "router"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr
        assert proc.stderr.startswith("dicomgate: The database ")
        assert "dicomgate.db has no dicomgate schema" in proc.stderr
        assert list(tmp_path.iterdir()) == []
