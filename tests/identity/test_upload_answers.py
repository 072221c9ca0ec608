"""Upload answers follow STOW-RS's convention on every upload route (201 all stored, 202 some,
4xx none), documented in the OpenAPI; a family name alone is stamped without a trailing ``^``."""

from __future__ import annotations

import httpx
import pytest

from tests.builders import to_bytes
from tests.identity.helpers import FOLDER, UPLOAD, image, part
from tests.ingest.helpers import OrthancView


@pytest.mark.parametrize("path", [UPLOAD, FOLDER])
async def test_the_openapi_documents_201_202_and_the_refusals(
    client: httpx.AsyncClient, path: str
) -> None:
    schema = (await client.get("/openapi.json")).json()
    responses = schema["paths"][path]["post"]["responses"]
    assert {"201", "202", "409", "422"} <= set(responses)
    assert "Every file was stored" in responses["201"]["description"]
    assert "Some files were stored" in responses["202"]["description"]
    assert "PatientConflict" in responses["409"]["description"]
    described = schema["paths"][path]["post"]["description"]
    assert "One SOP Instance UID, one patient" in described


async def test_a_family_name_alone_is_stamped_without_a_trailing_caret(
    client: httpx.AsyncClient, stored: OrthancView
) -> None:
    put = await client.put("/api/ris/patients/PN-ONLY-FAMILY/", json={"family_name": "Ström"})
    assert put.status_code in (200, 201), put.text
    assert put.json()["patient"]["name"] == "Ström"
    response = await client.post(
        UPLOAD, files=[part(to_bytes(image()))], data={"patient_id": "PN-ONLY-FAMILY"}
    )
    assert response.status_code == 201, response.text
    ds = stored.dataset(response.json()["orthanc_response"]["ID"])
    assert str(ds.PatientName) == "Ström"
    assert ds.PatientName.family_name == "Ström" and ds.PatientName.given_name == ""
