"""Issue 12 item 9: a redirect names no client-chosen host, LO rules on folder labels, a
compressed file cut inside its pixel data is called truncated, and health keeps versions and
failure details for authenticated callers."""

from __future__ import annotations

import io
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pydicom
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from dicomgate import __version__
from dicomgate.app import create_app
from dicomgate.auth.service import create_api_key
from dicomgate.db import session_scope
from dicomgate.dicom.vr import long_string
from dicomgate.settings import Settings
from tests.builders import to_bytes
from tests.orthanc_process import ORTHANC_BINARY, OrthancProcess
from tests.security.codestreams import SEEDS, compressed
from tests.security.test_hostile_input import stored_file

HEALTH = "/api/ris/health/"


class TestRedirect:
    @pytest.mark.parametrize(
        ("path", "location"),
        [
            ("/api/ris/health", "/api/ris/health/"),
            ("/api/ris/patients?limit=5", "/api/ris/patients/?limit=5"),
        ],
    )
    async def test_the_slash_redirect_is_relative_whatever_the_host(
        self, client: httpx.AsyncClient, path: str, location: str
    ) -> None:
        r = await client.get(path, headers={"Host": "evil.example"}, follow_redirects=False)
        assert r.status_code == 307
        assert r.headers["location"] == location


class TestLongStringRules:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("CT\x1b[31mHEAD\x07", "CT[31mHEAD"),
            ("a\\b", "ab"),
            ("  spaced \t", "spaced"),
            ("\x85next line\x9b", "next line"),
            ("é" * 70, "é" * 64),
        ],
    )
    def test_long_string(self, text: str, expected: str) -> None:
        assert long_string(text) == expected

    async def test_series_path_and_description_reach_the_file_clean(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess
    ) -> None:
        r = await client.put(
            "/api/ris/patients/LO-1/", json={"family_name": "Doe", "gender": "female"}
        )
        assert r.status_code in (200, 201), r.text
        r = await client.post(
            "/api/orthanc/upload-patient/",
            data={
                "patient_id": "LO-1",
                "study_description": "Head\x1b]0;pwned\x07 CT",
                "series_path": "exam/\x1b[2JAxial\r",
            },
            files={"files": ("a.dcm", to_bytes(compressed("j2k-lossless")), "application/dicom")},
        )
        assert r.status_code == 201, r.text
        async with httpx.AsyncClient() as http:
            iid = (await http.get(f"{clean_orthanc.url}/instances")).json()[0]
        stored = pydicom.dcmread(io.BytesIO(await stored_file(clean_orthanc, iid)))
        assert stored.SeriesDescription == "[2JAxial"
        assert stored.StudyDescription == "Head]0;pwned CT"


class TestTruncatedCompressedFiles:
    @pytest.mark.parametrize("name", sorted(SEEDS))
    async def test_cut_inside_the_pixel_data_is_called_truncated(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess, name: str
    ) -> None:
        data = to_bytes(compressed(name))
        r = await client.post(
            "/api/ris/upload/dicom/",
            files={"file": ("cut.dcm", data[: len(data) - 40], "application/dicom")},
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"].startswith("The DICOM file is truncated")
        assert "SOPClassUID" not in r.json()["error"]


# --- Health: verdicts for everyone, details for callers ------------------------------------
@pytest.fixture(scope="module")
def guarded_orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Orthanc that demands a password dicomgate will get wrong."""
    server = OrthancProcess(
        tmp_path_factory.mktemp("orthanc-auth"),
        extra_config={"AuthenticationEnabled": True, "RegisteredUsers": {"dicomgate": "right"}},
    )
    proc = subprocess.Popen(
        [ORTHANC_BINARY, str(server.config_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=server.workdir,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{server.url}/system", auth=("dicomgate", "right")).is_success:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "Orthanc did not start"
            time.sleep(0.1)
        yield server.url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
async def health_app(settings: Settings, guarded_orthanc: str) -> AsyncIterator[FastAPI]:
    app = create_app(
        settings.model_copy(
            update={
                "orthanc_url": guarded_orthanc,
                "orthanc_username": "dicomgate",
                "orthanc_password": SecretStr("wrong"),
                "auth_enabled": True,
                "jwt_secret": SecretStr("s" * 40),
                "jwt_audience": "dicomgate",
            }
        )
    )
    async with app.router.lifespan_context(app):
        yield app


class TestHealthDetail:
    async def test_anonymous_callers_get_verdicts_only(self, health_app: FastAPI) -> None:
        transport = httpx.ASGITransport(app=health_app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for headers in ({}, {"X-API-Key": "dg_000000000000_" + "x" * 43}):
                r = await client.get(HEALTH, headers=headers)
                assert r.status_code == 503  # Orthanc refuses dicomgate's password
                body = r.json()
                assert body["version"] is None and body["orthanc"]["version"] is None
                assert body["orthanc"] == {
                    "ok": False,
                    "detail": "failing (details for authenticated callers)",
                    "version": None,
                }
                assert body["codec"]["detail"] == "ok"
                assert "credentials" not in r.text and "OpenJPH" not in r.text

    async def test_authenticated_callers_get_versions_and_reasons(
        self, health_app: FastAPI
    ) -> None:
        async with session_scope(health_app.state.runtime.sessions) as session:
            _, key = await create_api_key(
                session, name=f"probe-{time.time_ns()}", scopes=["dicom:read"]
            )
        transport = httpx.ASGITransport(app=health_app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.get(HEALTH, headers={"X-API-Key": key})
        body = r.json()
        assert body["version"] == __version__
        assert body["orthanc"]["ok"] is False
        assert "credentials were refused" in body["orthanc"]["detail"]
        assert body["codec"]["detail"] != "ok"  # the codec's own version string
