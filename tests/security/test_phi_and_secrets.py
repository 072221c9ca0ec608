"""No patient data in logs by default; Orthanc's credentials never in answers or logs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from dicomgate.app import create_app
from dicomgate.phi import REDACTED, Phi, RevealPhi
from dicomgate.settings import Settings
from tests.builders import make_dataset, to_bytes
from tests.orthanc_process import OrthancProcess, free_port

ORTHANC_PASSWORD = "Orthanc-S3cret-pw-7731"


class TestPhiInLogs:
    async def test_refused_upload_logs_no_file_name(
        self,
        client: httpx.AsyncClient,
        clean_orthanc: OrthancProcess,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        r = await client.put(
            "/api/ris/patients/PHI-TEST-4711/",
            json={"family_name": "Doe", "given_name": "John", "gender": "male"},
        )
        assert r.status_code in (200, 201), r.text
        caplog.set_level(logging.INFO)
        r = await client.post(
            "/api/orthanc/upload-patient/",
            data={"patient_id": "PHI-TEST-4711", "study_description": "x"},
            files=[
                ("files", ("DOE_JOHN_19700131.dcm", b"not dicom", "application/dicom")),
                ("files", ("ok.dcm", to_bytes(make_dataset()), "application/dicom")),
            ],
        )
        assert r.status_code == 202, r.text  # one stored, one not
        assert [f["name"] for f in r.json()["failedFiles"]] == ["DOE_JOHN_19700131.dcm"]
        refusals = [rec for rec in caplog.records if "refused" in rec.getMessage()]
        assert refusals, "the refusal was not logged at all"
        text = "\n".join(rec.getMessage() for rec in caplog.records)
        assert "DOE_JOHN" not in text and "PHI-TEST-4711" not in text and "John" not in text

    def test_reveal_filter_restores_values_only_when_installed(self) -> None:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "file %s", (Phi("DOE"),), None)
        assert record.getMessage() == f"file {REDACTED}"
        RevealPhi().filter(record)
        assert record.getMessage() == "file DOE"


@pytest.fixture
async def client_with_credentials(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app configured with Orthanc credentials, pointed at a port where nothing listens."""
    app = create_app(
        settings.model_copy(
            update={
                "orthanc_url": f"http://127.0.0.1:{free_port()}",
                "orthanc_username": "dicomgate",
                "orthanc_password": SecretStr(ORTHANC_PASSWORD),
            }
        )
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c


async def test_credentials_never_reach_clients_or_logs(
    client_with_credentials: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers = [
        await client_with_credentials.get("/api/orthanc/patients/"),
        await client_with_credentials.get("/api/ris/health/"),
        await client_with_credentials.get("/openapi.json"),
    ]
    assert answers[0].status_code == 503
    assert answers[0].json()["type"] == "OrthancUnavailable"
    assert answers[1].status_code == 503
    for answer in answers:
        assert ORTHANC_PASSWORD not in answer.text
    logged = "\n".join(rec.getMessage() + str(rec.exc_info or "") for rec in caplog.records)
    assert ORTHANC_PASSWORD not in logged
