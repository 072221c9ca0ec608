"""Download of stored files and the four DELETEs, against a real Orthanc."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydicom.uid import generate_uid

from tests.browse.helpers import Store
from tests.browse.test_listings import UNKNOWN_ID, assert_error
from tests.builders import make_dataset, to_bytes, to_htj2k
from tests.orthanc_process import OrthancProcess


class TestDownload:
    async def test_unknown_instance_is_404(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess
    ) -> None:
        response = await client.get(f"/api/orthanc/instances/{UNKNOWN_ID}/file/")
        assert_error(response, 404, "NotFound", f"No instance with Orthanc ID {UNKNOWN_ID}")

    async def test_malformed_id_is_404_without_asking_orthanc(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess
    ) -> None:
        response = await client.get("/api/orthanc/instances/..%2F..%2Fsystem/file/")
        assert response.status_code == 404
        assert response.json()["success"] is False

    @pytest.mark.parametrize("kind", ["native", "htj2k"])
    async def test_byte_identical_with_headers(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess, kind: str
    ) -> None:
        ds = make_dataset(rows=32, columns=32, frames=2)
        data = to_bytes(to_htj2k(ds) if kind == "htj2k" else ds)
        iid = clean_orthanc.store(data)["ID"]
        response = await client.get(f"/api/orthanc/instances/{iid}/file/")
        assert response.status_code == 200
        assert response.content == data
        assert response.headers["content-type"] == "application/dicom"
        assert response.headers["content-length"] == str(len(data))
        assert response.headers["content-disposition"] == f'attachment; filename="{iid}.dcm"'

    async def test_corpus_file_byte_identical(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess, corpus_dir: Path
    ) -> None:
        data = (corpus_dir / "JPEG2000.dcm").read_bytes()
        iid = clean_orthanc.store(data)["ID"]
        response = await client.get(f"/api/orthanc/instances/{iid}/file/")
        assert response.status_code == 200
        assert response.content == data


def orthanc_has(orthanc: OrthancProcess, level: str, orthanc_id: str) -> bool:
    return httpx.get(f"{orthanc.url}/{level}/{orthanc_id}").status_code == 200


class TestDelete:
    @pytest.mark.parametrize("level", ["patients", "studies", "series", "instances"])
    async def test_unknown_is_404(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess, level: str
    ) -> None:
        response = await client.delete(f"/api/orthanc/{level}/{UNKNOWN_ID}/")
        assert response.status_code == 404
        assert response.json()["type"] == "NotFound"
        assert UNKNOWN_ID in response.json()["error"]

    async def test_last_instance_cascades_to_patient(
        self, client: httpx.AsyncClient, store: Store, clean_orthanc: OrthancProcess
    ) -> None:
        only = store(make_dataset())
        response = await client.delete(f"/api/orthanc/instances/{only['ID']}/")
        assert response.status_code == 200
        assert response.json() == {
            "success": True,
            "deleted": {"level": "instance", "orthancId": only["ID"]},
            "remaining": None,
        }
        for level, key in (
            ("instances", "ID"),
            ("series", "ParentSeries"),
            ("studies", "ParentStudy"),
            ("patients", "ParentPatient"),
        ):
            assert not orthanc_has(clean_orthanc, level, only[key]), level

    async def test_instance_with_sibling_leaves_series(
        self, client: httpx.AsyncClient, store: Store, clean_orthanc: OrthancProcess
    ) -> None:
        study, series = generate_uid(), generate_uid()
        gone = store(make_dataset(study_uid=study, series_uid=series, instance_number=1))
        kept = store(make_dataset(study_uid=study, series_uid=series, instance_number=2))
        response = await client.delete(f"/api/orthanc/instances/{gone['ID']}/")
        assert response.json() == {
            "success": True,
            "deleted": {"level": "instance", "orthancId": gone["ID"]},
            "remaining": {"level": "series", "orthancId": kept["ParentSeries"]},
        }
        assert orthanc_has(clean_orthanc, "instances", kept["ID"])
        assert not orthanc_has(clean_orthanc, "instances", gone["ID"])

    async def test_series_with_sibling_leaves_study(
        self, client: httpx.AsyncClient, store: Store, clean_orthanc: OrthancProcess
    ) -> None:
        study = generate_uid()
        gone = store(make_dataset(study_uid=study))
        kept = store(make_dataset(study_uid=study))
        response = await client.delete(f"/api/orthanc/series/{gone['ParentSeries']}/")
        assert response.status_code == 200
        assert response.json()["remaining"] == {"level": "study", "orthancId": kept["ParentStudy"]}
        assert not orthanc_has(clean_orthanc, "instances", gone["ID"])
        assert orthanc_has(clean_orthanc, "instances", kept["ID"])

    async def test_study_with_sibling_leaves_patient(
        self, client: httpx.AsyncClient, store: Store, clean_orthanc: OrthancProcess
    ) -> None:
        gone = store(make_dataset())
        kept = store(make_dataset())  # same patient, new study
        response = await client.delete(f"/api/orthanc/studies/{gone['ParentStudy']}/")
        assert response.json() == {
            "success": True,
            "deleted": {"level": "study", "orthancId": gone["ParentStudy"]},
            "remaining": {"level": "patient", "orthancId": kept["ParentPatient"]},
        }
        assert orthanc_has(clean_orthanc, "studies", kept["ParentStudy"])

    async def test_patient_removes_everything_below(
        self, client: httpx.AsyncClient, store: Store, clean_orthanc: OrthancProcess
    ) -> None:
        a = store(make_dataset(patient_id="A"))
        b = store(make_dataset(patient_id="A"))
        other = store(make_dataset(patient_id="B"))
        response = await client.delete(f"/api/orthanc/patients/{a['ParentPatient']}/")
        assert response.json() == {
            "success": True,
            "deleted": {"level": "patient", "orthancId": a["ParentPatient"]},
            "remaining": None,
        }
        assert not orthanc_has(clean_orthanc, "instances", a["ID"])
        assert not orthanc_has(clean_orthanc, "instances", b["ID"])
        assert orthanc_has(clean_orthanc, "instances", other["ID"])
        listing = await client.get("/api/orthanc/patients/")
        assert [p["patientId"] for p in listing.json()] == ["B"]


class TestApiDocs:
    async def test_docs_and_redoc_use_no_external_host(self, client: httpx.AsyncClient) -> None:
        import re

        for path in ("/docs", "/redoc"):
            response = await client.get(path)
            assert response.status_code == 200
            urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", response.text)
            assert urls, path
            external = [u for u in urls if re.match(r"^(https?:)?//", u)]
            assert external == [], (path, external)
            for url in urls:
                if url.endswith((".js", ".css")):
                    asset = await client.get(url)
                    assert asset.status_code == 200, url
                    assert len(asset.content) > 1000, url

    async def test_browse_routes_documented(self, client: httpx.AsyncClient) -> None:
        schema = (await client.get("/openapi.json")).json()
        instances = schema["paths"]["/api/orthanc/instances/"]["get"]
        assert instances["operationId"] == "listOrthancInstances"
        assert set(instances["responses"]) >= {"200", "404", "422", "502", "503", "504"}
        delete = schema["paths"]["/api/orthanc/series/{orthanc_id}/"]["delete"]
        assert delete["operationId"] == "deleteOrthancSeries"
        item = schema["components"]["schemas"]["InstanceSummary"]
        assert list(item["properties"]) == [
            "orthancId",
            "instanceNumber",
            "instanceNumberInt",
            "sopInstanceUID",
            "rows",
            "columns",
            "pixelSpacing",
            "sliceThickness",
            "sliceLocation",
            "imagePositionPatient",
            "patientId",
            "patientName",
            "studyInstanceUID",
            "seriesInstanceUID",
            "seriesNumber",
        ]
