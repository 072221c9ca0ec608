"""Two concurrent uploads of one instance to two patients never both succeed: in one process,
and across two dicomgate replicas sharing one database (SQLite file, or PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from dicomgate.app import create_app
from tests.builders import to_bytes
from tests.identity.helpers import UPLOAD, holders, image, part
from tests.identity.test_rules import uids
from tests.ingest.helpers import BOTH_DATABASES, MakePatient, OrthancView

ROUNDS = 5


@asynccontextmanager
async def replica_of(app: FastAPI) -> AsyncIterator[FastAPI]:
    """A second dicomgate on the same database and Orthanc: its own process pool, engine and
    HTTP client, like another replica behind the load balancer."""
    twin = create_app(app.state.settings.model_copy(update={"workers": 1}))
    async with twin.router.lifespan_context(twin):
        yield twin


def client_of(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://dicomgate.test")


@BOTH_DATABASES
@pytest.mark.parametrize("topology", ["one-process", "two-replicas"])
async def test_one_instance_raced_to_two_patients_is_stored_once(
    topology: str,
    ingest_app: FastAPI,
    stored: OrthancView,
    make_patient: MakePatient,
) -> None:
    first_patient, second_patient = await make_patient(), await make_patient()
    async with AsyncExitStack() as stack:
        other_app = ingest_app
        if topology == "two-replicas":
            other_app = await stack.enter_async_context(replica_of(ingest_app))
        one = await stack.enter_async_context(client_of(ingest_app))
        two = await stack.enter_async_context(client_of(other_app))
        for seed in range(ROUNDS):
            ids = uids()
            data = to_bytes(image(seed=seed, **ids))
            answers = await asyncio.gather(
                one.post(UPLOAD, files=[part(data)], data={"patient_id": first_patient.patient_id}),
                two.post(
                    UPLOAD, files=[part(data)], data={"patient_id": second_patient.patient_id}
                ),
            )
            codes = [a.status_code for a in answers]
            assert sorted(codes) == [201, 409], [a.text for a in answers]
            winner = (first_patient, second_patient)[codes.index(201)]
            loser = answers[codes.index(409)].json()
            assert loser["type"] in {"PatientConflict", "InstanceBusy"}, loser
            assert "nothing was stored" in loser["error"]
            assert [p for _, p in holders(stored, ids["sop_uid"])] == [winner.patient_id]
    assert stored.instance_count() == ROUNDS
