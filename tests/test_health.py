"""GET /api/ris/health/ against a real Orthanc, a real SQLite DB and the real worker pool."""

from __future__ import annotations

import httpx

from tests.orthanc_process import OrthancProcess


class TestHealth:
    async def test_all_up_is_200_with_versions(
        self, client: httpx.AsyncClient, orthanc: OrthancProcess
    ) -> None:
        orthanc.start()
        response = await client.get("/api/ris/health/")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "ok"
        async with httpx.AsyncClient() as http:
            expected_version = (await http.get(f"{orthanc.url}/system")).json()["Version"]
        assert body["orthanc"] == {"ok": True, "detail": "reachable", "version": expected_version}
        assert body["database"] == {"ok": True, "detail": "sqlite reachable and writable"}
        assert body["codec"]["encoder"] == "htj2k"
        assert body["codec"]["target_transfer_syntax"] == "1.2.840.10008.1.2.4.201"
        assert body["codec"]["fallback"] is False
        assert body["workers"] == {"ok": True, "detail": "2 workers answering"}

    async def test_orthanc_down_is_503_and_says_so(
        self, client: httpx.AsyncClient, orthanc: OrthancProcess
    ) -> None:
        orthanc.stop()
        try:
            response = await client.get("/api/ris/health/")
        finally:
            orthanc.start()
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "degraded"
        assert body["orthanc"]["ok"] is False
        assert body["orthanc"]["detail"].startswith("Orthanc is unreachable")
        assert body["database"]["ok"] is True
