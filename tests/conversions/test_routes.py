"""The conversions admin API: start a job, watch it, list jobs, cancel."""

from __future__ import annotations

import asyncio
from io import BytesIO
from typing import Any

import httpx
import pydicom

from dicomgate.codec.profiles import HTJ2K_SYNTAXES
from tests.builders import make_dataset, to_bytes
from tests.conversions.helpers import decoded_crc32s, served_file
from tests.orthanc_process import OrthancProcess

BASE = "/api/ris/conversions"


async def _wait_finished(client: httpx.AsyncClient, job_id: int) -> dict[str, Any]:
    for _ in range(300):
        body: dict[str, Any] = (await client.get(f"{BASE}/{job_id}/")).json()
        if body["state"] not in ("pending", "running"):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {body}")


class TestStartConversion:
    async def test_converts_a_study_in_the_background(
        self, clean_orthanc: OrthancProcess, client: httpx.AsyncClient
    ) -> None:
        ds = make_dataset(rows=16, columns=16, study_uid="1.2.826.0.1.3680043.10.9.1")
        original = to_bytes(ds)
        orthanc_id = clean_orthanc.store(original)["ID"]

        response = await client.post(f"{BASE}/", json={"study_instance_uid": ds.StudyInstanceUID})

        assert response.status_code == 202
        job = await _wait_finished(client, response.json()["id"])
        assert job["state"] == "completed"
        assert (job["instances_total"], job["converted"], job["failed"]) == (1, 1, 0)
        assert job["selector"] == "study" and job["dry_run"] is False
        assert job["current_study"] == ds.StudyInstanceUID
        served = served_file(clean_orthanc, orthanc_id)
        assert pydicom.dcmread(BytesIO(served)).file_meta.TransferSyntaxUID in HTJ2K_SYNTAXES
        assert decoded_crc32s(served) == decoded_crc32s(original)

        listed = (await client.get(f"{BASE}/")).json()["jobs"]
        assert listed[0]["id"] == job["id"]

    async def test_dry_run_job_changes_nothing(
        self, clean_orthanc: OrthancProcess, client: httpx.AsyncClient
    ) -> None:
        original = to_bytes(make_dataset(rows=16, columns=16))
        orthanc_id = clean_orthanc.store(original)["ID"]

        response = await client.post(f"{BASE}/", json={"all": True, "dry_run": True})

        job = await _wait_finished(client, response.json()["id"])
        assert (job["state"], job["converted"], job["dry_run"]) == ("completed", 1, True)
        assert served_file(clean_orthanc, orthanc_id) == original

    async def test_two_selectors_are_refused(self, client: httpx.AsyncClient) -> None:
        response = await client.post(f"{BASE}/", json={"all": True, "patient_id": "P1"})
        assert response.status_code == 422
        assert "exactly one of" in response.json()["error"]

    async def test_shards_are_gone(self, client: httpx.AsyncClient) -> None:
        """Workers share the studies of a job now: a shard is refused, by name, not ignored."""
        before = (await client.get(f"{BASE}/")).json()["jobs"]
        response = await client.post(f"{BASE}/", json={"all": True, "shard": "1/2"})
        assert response.status_code == 422
        assert "shard" in response.json()["error"]
        assert (await client.get(f"{BASE}/")).json()["jobs"] == before  # no job created


class TestGetAndCancel:
    async def test_unknown_job_is_404(self, client: httpx.AsyncClient) -> None:
        for response in (
            await client.get(f"{BASE}/999999/"),
            await client.post(f"{BASE}/999999/cancel/"),
        ):
            assert response.status_code == 404
            assert response.json() == {
                "success": False,
                "type": "ConversionJobNotFound",
                "error": "No conversion job with ID 999999",
            }

    async def test_cancelling_a_finished_job_changes_nothing(
        self, clean_orthanc: OrthancProcess, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(f"{BASE}/", json={"all": True, "dry_run": True})
        job = await _wait_finished(client, response.json()["id"])

        cancelled = await client.post(f"{BASE}/{job['id']}/cancel/")

        assert cancelled.status_code == 200
        assert cancelled.json()["state"] == "completed"
