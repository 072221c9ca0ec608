"""``GET /api/ris/statistics/`` against a real Orthanc, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, select, text

from dicomgate.app import create_app
from dicomgate.codec.capabilities import HTJ2K_LOSSLESS
from dicomgate.conversions.plan import make_selection
from dicomgate.conversions.service import run_job, start_or_resume
from dicomgate.db import session_scope
from dicomgate.identity.models import STORED, InstanceClaim
from dicomgate.migrations import downgrade_database, upgrade_database
from dicomgate.settings import Settings
from dicomgate.statistics.models import StoredInstance
from dicomgate.statistics.schemas import BASIS
from tests.builders import make_dataset, to_bytes
from tests.databases import KINDS, fresh_database
from tests.orthanc_process import OrthancProcess

ROUTE = "/api/ris/statistics/"


@pytest.fixture(scope="module", params=KINDS)
async def stats_app(
    request: pytest.FixtureRequest, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FastAPI]:
    """The app on a database of its own (other tests' uploads never reach these figures)."""
    async with fresh_database(
        request.param, tmp_path_factory.mktemp("stats-db"), prefix="stats"
    ) as url:
        own = settings.model_copy(
            update={"database_url": url, "journal_dir": tmp_path_factory.mktemp("stats-journal")}
        )
        await asyncio.to_thread(upgrade_database, own)
        application = create_app(own)
        async with application.router.lifespan_context(application):
            yield application


@pytest.fixture
async def api(
    stats_app: FastAPI, clean_orthanc: OrthancProcess
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of that app, with Orthanc emptied and nothing recorded."""
    async with session_scope(stats_app.state.runtime.sessions) as session:
        await session.execute(delete(StoredInstance))
    transport = httpx.ASGITransport(app=stats_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://dicomgate.test") as c:
        yield c


async def upload(api: httpx.AsyncClient, path: Path) -> dict[str, Any]:
    data = await asyncio.to_thread(path.read_bytes)
    response = await api.post("/api/ris/upload/dicom/", files={"file": (path.name, data)})
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def saved(*answers: dict[str, Any]) -> int:
    return sum(a["original_size"] - a["stored_size"] for a in answers)


def by_modality(body: dict[str, Any]) -> dict[str | None, tuple[int, int, int, int]]:
    return {
        m["modality"]: (
            m["instances"],
            m["htj2k_instances"],
            m["bytes_original"],
            m["bytes_stored"],
        )
        for m in body["modalities"]
    }


async def test_empty(api: httpx.AsyncClient) -> None:
    response = await api.get(ROUTE)
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "orthanc": {
            "patients": 0,
            "studies": 0,
            "series": 0,
            "instances": 0,
            "disk_size_bytes": 0,
            "uncompressed_size_bytes": 0,
        },
        "ingest": {"instances": 0, "bytes_saved": 0},
        "conversions": {"instances": 0, "bytes_saved": 0},
        "htj2k": {"instances": 0, "share": None},
        "modalities": [],
        "basis": BASIS,
    }


async def test_uploads_conversions_and_deletes(
    api: httpx.AsyncClient, stats_app: FastAPI, clean_orthanc: OrthancProcess, corpus_dir: Path
) -> None:
    ct = await upload(api, corpus_dir / "CT_small.dcm")
    mr = await upload(api, corpus_dir / "MR_small.dcm")
    nm = await upload(api, corpus_dir / "JPGExtended.dcm")  # lossy JPEG: kept as it is
    assert [a["stored_transfer_syntax"] for a in (ct, mr, nm)] == [
        HTJ2K_LOSSLESS,
        HTJ2K_LOSSLESS,
        "1.2.840.10008.1.2.4.51",
    ]
    # An instance stored in Orthanc directly, not through dicomgate.
    direct = make_dataset(rows=64, columns=64, modality="CT", patient_id="DIRECT")
    direct_size = len(to_bytes(direct))
    clean_orthanc.store(to_bytes(direct))

    # One Orthanc request per call, whatever the archive holds.
    requests: list[str] = []

    async def count(request: httpx.Request) -> None:
        requests.append(request.url.path)

    hooks = stats_app.state.runtime.http.event_hooks["request"]
    hooks.append(count)
    try:
        body = (await api.get(ROUTE)).json()
    finally:
        hooks.remove(count)
    assert requests == ["/statistics"]

    async with httpx.AsyncClient(base_url=clean_orthanc.url) as direct_client:
        orthanc_own = (await direct_client.get("/statistics")).json()
    assert body["orthanc"]["instances"] == orthanc_own["CountInstances"] == 4
    assert body["orthanc"]["patients"] == orthanc_own["CountPatients"]
    assert body["orthanc"]["disk_size_bytes"] == int(orthanc_own["TotalDiskSize"]) > 0
    assert body["ingest"] == {"instances": 3, "bytes_saved": saved(ct, mr, nm)}
    assert body["conversions"] == {"instances": 0, "bytes_saved": 0}
    assert body["htj2k"] == {"instances": 2, "share": 0.5}  # the direct one is not HTJ2K
    assert by_modality(body) == {
        "CT": (1, 1, ct["original_size"], ct["stored_size"]),
        "MR": (1, 1, mr["original_size"], mr["stored_size"]),
        "NM": (1, 0, nm["original_size"], nm["stored_size"]),
    }
    ct_row = next(m for m in body["modalities"] if m["modality"] == "CT")
    assert ct_row["compression_ratio"] == round(ct["original_size"] / ct["stored_size"], 3)

    # Uploading the same file again changes nothing (Orthanc: AlreadyStored).
    await upload(api, corpus_dir / "CT_small.dcm")
    assert (await api.get(ROUTE)).json()["ingest"]["instances"] == 3

    # A conversion of the directly stored study: counted for conversions, with its modality.
    runtime = stats_app.state.runtime
    job = await start_or_resume(
        runtime,
        selection=make_selection(study=str(direct.StudyInstanceUID)),
        dry_run=False,
        resume=False,
    )
    summary = await run_job(runtime, job, concurrency=1)
    assert summary.converted == 1
    body = (await api.get(ROUTE)).json()
    converted_saved = summary.bytes_before - summary.bytes_after
    assert summary.bytes_before == direct_size
    assert body["conversions"] == {"instances": 1, "bytes_saved": converted_saved}
    assert body["htj2k"] == {"instances": 3, "share": 0.75}
    assert by_modality(body)["CT"] == (
        2,
        2,
        ct["original_size"] + summary.bytes_before,
        ct["stored_size"] + summary.bytes_after,
    )

    # Deleting through dicomgate: the patient's instances leave the figures.
    deleted = await api.delete(f"/api/orthanc/patients/{mr['orthanc_response']['ParentPatient']}/")
    assert deleted.status_code == 200, deleted.text
    body = (await api.get(ROUTE)).json()
    assert body["orthanc"]["instances"] == 3
    assert body["ingest"] == {"instances": 2, "bytes_saved": saved(ct, nm)}
    assert body["htj2k"] == {"instances": 2, "share": 0.6667}
    assert "MR" not in by_modality(body)


def test_migration_0006_upgrades_and_downgrades(tmp_path: Path) -> None:
    import sqlite3

    own = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    upgrade_database(own)
    tables = "SELECT name FROM sqlite_master WHERE type = 'table'"
    with sqlite3.connect(tmp_path / "dicomgate.db") as db:
        assert ("stored_instances",) in db.execute(tables).fetchall()
    downgrade_database(own, revision="0005_conversion_estimates")
    with sqlite3.connect(tmp_path / "dicomgate.db") as db:
        assert ("stored_instances",) not in db.execute(tables).fetchall()
    upgrade_database(own)


async def test_stow_rs_is_counted_as_ingest(api: httpx.AsyncClient) -> None:
    from tests.dicomweb.test_stow import related

    data = to_bytes(make_dataset(rows=32, columns=32, modality="MR"))
    body, content_type = related([(data, "application/dicom")])
    stored = await api.post(
        "/dicomweb/studies",
        content=body,
        headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
    )
    assert stored.status_code == 200, stored.text
    answer = (await api.get(ROUTE)).json()
    assert answer["ingest"]["instances"] == 1
    assert answer["htj2k"] == {"instances": 1, "share": 1.0}
    [mr] = answer["modalities"]
    assert (mr["modality"], mr["instances"], mr["bytes_original"]) == ("MR", 1, len(data))


async def test_a_failed_statistics_write_costs_the_statistic_not_the_upload(
    api: httpx.AsyncClient, stats_app: FastAPI, corpus_dir: Path
) -> None:
    """The ledger row is written in the transaction that settles the instance's claim; when it
    fails (here: its table is gone), the claim is settled alone and the upload still succeeds."""
    sessions = stats_app.state.runtime.sessions
    async with session_scope(sessions) as session:
        await session.execute(text("ALTER TABLE stored_instances RENAME TO stored_instances_away"))
    try:
        answer = await upload(api, corpus_dir / "CT_small.dcm")
    finally:
        async with session_scope(sessions) as session:
            await session.execute(
                text("ALTER TABLE stored_instances_away RENAME TO stored_instances")
            )
    async with session_scope(sessions) as session:
        claim = await session.scalar(
            select(InstanceClaim).where(
                InstanceClaim.sop_instance_uid == answer_sop_uid(corpus_dir / "CT_small.dcm")
            )
        )
    assert claim is not None
    assert (claim.state, claim.orthanc_id) == (STORED, answer["orthanc_response"]["ID"])
    assert claim.file_uuid
    assert (await api.get(ROUTE)).json()["ingest"]["instances"] == 0


def answer_sop_uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


async def orthanc_file_uuid(orthanc: OrthancProcess, orthanc_id: str) -> str:
    async with httpx.AsyncClient(base_url=orthanc.url) as client:
        answer = (await client.get(f"/instances/{orthanc_id}")).json()
    return str(answer["FileUuid"])


async def recorded_row(app: FastAPI, orthanc_id: str) -> StoredInstance:
    async with session_scope(app.state.runtime.sessions) as session:
        row = await session.get(StoredInstance, orthanc_id)
    assert row is not None
    return row


async def test_the_row_names_the_file_orthanc_holds_after_ingest_and_conversion(
    api: httpx.AsyncClient, stats_app: FastAPI, clean_orthanc: OrthancProcess, corpus_dir: Path
) -> None:
    """The syntax DICOMweb reads instead of the file's header is recorded with the attachment
    UUID of the very file (verified by Orthanc's MD5 of it), on ingest and on conversion."""
    ct = await upload(api, corpus_dir / "CT_small.dcm")
    ct_id = ct["orthanc_response"]["ID"]
    row = await recorded_row(stats_app, ct_id)
    assert row.transfer_syntax == HTJ2K_LOSSLESS
    assert row.file_uuid == await orthanc_file_uuid(clean_orthanc, ct_id)

    direct = make_dataset(rows=64, columns=64, modality="CT", patient_id="DIRECT-2")
    direct_id = clean_orthanc.store(to_bytes(direct))["ID"]
    before = await orthanc_file_uuid(clean_orthanc, direct_id)
    runtime = stats_app.state.runtime
    job = await start_or_resume(
        runtime,
        selection=make_selection(study=str(direct.StudyInstanceUID)),
        dry_run=False,
        resume=False,
    )
    assert (await run_job(runtime, job, concurrency=1)).converted == 1
    row = await recorded_row(stats_app, direct_id)
    after = await orthanc_file_uuid(clean_orthanc, direct_id)
    assert after != before
    assert (row.transfer_syntax, row.file_uuid) == (HTJ2K_LOSSLESS, after)
