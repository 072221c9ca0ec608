"""The four hierarchy listings and /patients/{id}/images/, against a real Orthanc."""

from __future__ import annotations

import random

import httpx
import pytest
from pydicom.uid import generate_uid

from tests.browse.helpers import Store
from tests.builders import make_dataset
from tests.orthanc_process import OrthancProcess

UNKNOWN_ID = "00000000-00000000-00000000-00000000-00000000"


def assert_error(response: httpx.Response, status: int, kind: str, contains: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["type"] == kind
    assert contains in body["error"]


class TestListPatients:
    async def test_empty_orthanc_is_empty_list(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess
    ) -> None:
        response = await client.get("/api/orthanc/patients/")
        assert response.status_code == 200
        assert response.json() == []

    async def test_patients_with_study_counts(
        self, client: httpx.AsyncClient, store: Store
    ) -> None:
        a = store(make_dataset(patient_id="A1", patient_name="Alpha^Ann"))
        store(make_dataset(patient_id="A1", patient_name="Alpha^Ann"))  # second study
        b = store(make_dataset(patient_id="B2", patient_name="Beta^Bob"))
        response = await client.get("/api/orthanc/patients/")
        assert response.status_code == 200
        assert response.json() == [
            {
                "orthancId": a["ParentPatient"],
                "patientId": "A1",
                "patientName": "Alpha^Ann",
                "studiesCount": 2,
            },
            {
                "orthancId": b["ParentPatient"],
                "patientId": "B2",
                "patientName": "Beta^Bob",
                "studiesCount": 1,
            },
        ]

    async def test_filter_by_dicom_patient_id(
        self, client: httpx.AsyncClient, store: Store
    ) -> None:
        store(make_dataset(patient_id="P001", patient_name="One^Ann"))
        two = store(make_dataset(patient_id="P002", patient_name="Two^Bob"))
        store(make_dataset(patient_id="P0021", patient_name="Longer^Id"))
        response = await client.get("/api/orthanc/patients/", params={"patient_id": "P002"})
        assert response.status_code == 200
        assert response.json() == [
            {
                "orthancId": two["ParentPatient"],
                "patientId": "P002",
                "patientName": "Two^Bob",
                "studiesCount": 1,
            }
        ]
        # The orthancId found is what the study listing takes.
        studies = await client.get(
            "/api/orthanc/studies/", params={"patient_id": response.json()[0]["orthancId"]}
        )
        assert [s["orthancId"] for s in studies.json()] == [two["ParentStudy"]]

    @pytest.mark.parametrize("patient_id", ["P00*", "P00?", "p002", "P003"])
    async def test_filter_is_exact_no_wildcards(
        self, client: httpx.AsyncClient, store: Store, patient_id: str
    ) -> None:
        store(make_dataset(patient_id="P001"))
        store(make_dataset(patient_id="P002"))
        response = await client.get("/api/orthanc/patients/", params={"patient_id": patient_id})
        assert response.status_code == 200
        assert response.json() == []

    @pytest.mark.parametrize(
        ("patient_id", "why"),
        [
            ("A\\B", "must not contain a backslash (DICOM LO)"),
            ("A\x01B", "must not contain control characters (DICOM LO)"),
            ("X" * 65, "longer than 64 characters (DICOM LO)"),
            ("", "must not be empty"),
        ],
    )
    async def test_filter_that_is_no_patient_id_is_422(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess, patient_id: str, why: str
    ) -> None:
        response = await client.get("/api/orthanc/patients/", params={"patient_id": patient_id})
        assert_error(response, 422, "ValidationError", why)

    async def test_orthanc_stopped_is_503_json(
        self, client: httpx.AsyncClient, orthanc: OrthancProcess
    ) -> None:
        orthanc.stop()
        try:
            response = await client.get("/api/orthanc/patients/")
        finally:
            orthanc.start()
        assert_error(response, 503, "OrthancUnavailable", "Orthanc is unreachable")
        # And the service recovers once Orthanc is back.
        assert (await client.get("/api/orthanc/patients/")).status_code == 200


class TestListStudies:
    async def test_missing_patient_id_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/api/orthanc/studies/")
        assert_error(response, 422, "ValidationError", "patient_id")

    @pytest.mark.parametrize("patient_id", [UNKNOWN_ID, "not-an-id", "..%2Fsystem"])
    async def test_unknown_patient_is_404(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess, patient_id: str
    ) -> None:
        response = await client.get("/api/orthanc/studies/", params={"patient_id": patient_id})
        assert_error(response, 404, "NotFound", "No patient with Orthanc ID")

    async def test_a_dicom_patient_id_gets_told_how_to_find_the_orthanc_id(
        self, client: httpx.AsyncClient, store: Store
    ) -> None:
        store(make_dataset(patient_id="P002"))  # created, and known by its DICOM Patient ID
        response = await client.get("/api/orthanc/studies/", params={"patient_id": "P002"})
        assert_error(
            response,
            404,
            "NotFound",
            "No patient with Orthanc ID P002. This patient_id is Orthanc's ID of the patient "
            "(five groups of 8 hex digits), not the DICOM Patient ID: find it as orthancId in "
            "GET /api/orthanc/patients/?patient_id=P002",
        )
        images = await client.get("/api/orthanc/patients/P002/images/")
        assert_error(images, 404, "NotFound", "GET /api/orthanc/patients/?patient_id=P002")

    async def test_studies_newest_first_with_series_counts(
        self, client: httpx.AsyncClient, store: Store
    ) -> None:
        old_uid, new_uid = generate_uid(), generate_uid()
        old = store(
            make_dataset(study_uid=old_uid, StudyDate="20200101", StudyDescription="Old CT")
        )
        store(make_dataset(study_uid=old_uid, StudyDate="20200101", StudyDescription="Old CT"))
        new = store(
            make_dataset(study_uid=new_uid, StudyDate="20250601", StudyDescription="Brain MRI")
        )
        response = await client.get(
            "/api/orthanc/studies/", params={"patient_id": old["ParentPatient"]}
        )
        assert response.status_code == 200
        assert response.json() == [
            {
                "orthancId": new["ParentStudy"],
                "studyInstanceUID": new_uid,
                "description": "Brain MRI",
                "studyDate": "20250601",
                "seriesCount": 1,
            },
            {
                "orthancId": old["ParentStudy"],
                "studyInstanceUID": old_uid,
                "description": "Old CT",
                "studyDate": "20200101",
                "seriesCount": 2,
            },
        ]


class TestListSeries:
    async def test_missing_study_id_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/api/orthanc/series/")
        assert_error(response, 422, "ValidationError", "study_id")

    async def test_unknown_study_is_404(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess
    ) -> None:
        response = await client.get("/api/orthanc/series/", params={"study_id": UNKNOWN_ID})
        assert_error(response, 404, "NotFound", f"No study with Orthanc ID {UNKNOWN_ID}")

    async def test_series_by_number_with_instance_counts(
        self, client: httpx.AsyncClient, store: Store
    ) -> None:
        study, s2, s10 = generate_uid(), generate_uid(), generate_uid()
        ten = store(
            make_dataset(
                study_uid=study,
                series_uid=s10,
                SeriesNumber=10,
                SeriesDescription="T2 AX",
                modality="MR",
            )
        )
        two = store(
            make_dataset(
                study_uid=study,
                series_uid=s2,
                SeriesNumber=2,
                SeriesDescription="Scout",
                modality="CT",
                instance_number=1,
            )
        )
        store(
            make_dataset(
                study_uid=study,
                series_uid=s2,
                SeriesNumber=2,
                SeriesDescription="Scout",
                modality="CT",
                instance_number=2,
            )
        )
        response = await client.get("/api/orthanc/series/", params={"study_id": two["ParentStudy"]})
        assert response.status_code == 200
        assert response.json() == [
            {
                "orthancId": two["ParentSeries"],
                "seriesInstanceUID": s2,
                "modality": "CT",
                "description": "Scout",
                "seriesNumber": "2",
                "instancesCount": 2,
            },
            {
                "orthancId": ten["ParentSeries"],
                "seriesInstanceUID": s10,
                "modality": "MR",
                "description": "T2 AX",
                "seriesNumber": "10",
                "instancesCount": 1,
            },
        ]


class TestListInstances:
    async def test_missing_series_id_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/api/orthanc/instances/")
        assert_error(response, 422, "ValidationError", "series_id")

    async def test_unknown_series_is_404(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess
    ) -> None:
        response = await client.get("/api/orthanc/instances/", params={"series_id": UNKNOWN_ID})
        assert_error(response, 404, "NotFound", f"No series with Orthanc ID {UNKNOWN_ID}")

    async def test_exact_fields_of_one_instance(
        self, client: httpx.AsyncClient, store: Store
    ) -> None:
        study, series, sop = generate_uid(), generate_uid(), generate_uid()
        stored = store(
            make_dataset(
                rows=6,
                columns=4,
                study_uid=study,
                series_uid=series,
                sop_uid=sop,
                patient_id="P9",
                patient_name="Doe^John",
                instance_number=7,
                SeriesNumber=3,
                PixelSpacing=[0.5, 0.25],
                SliceThickness=1.5,
                SliceLocation=-50.0,
                ImagePositionPatient=["-100", "-100", "-50"],
            )
        )
        response = await client.get(
            "/api/orthanc/instances/", params={"series_id": stored["ParentSeries"]}
        )
        assert response.status_code == 200
        assert response.json() == [
            {
                "orthancId": stored["ID"],
                "instanceNumber": "7",
                "instanceNumberInt": 7,
                "sopInstanceUID": sop,
                "rows": "6",
                "columns": "4",
                "pixelSpacing": "0.5\\0.25",
                "sliceThickness": "1.5",
                "sliceLocation": "-50.0",
                "imagePositionPatient": "-100\\-100\\-50",
                "patientId": "P9",
                "patientName": "Doe^John",
                "studyInstanceUID": study,
                "seriesInstanceUID": series,
                "seriesNumber": "3",
            }
        ]

    @pytest.mark.parametrize("count", [4, 12], ids=["per-instance-tags", "instances-tags"])
    async def test_sorted_by_number_then_sop_uid_absent_last(
        self, client: httpx.AsyncClient, store: Store, count: int
    ) -> None:
        # Both ways of reading the non-indexed tags (≤ and > Settings.orthanc_concurrency = 8).
        study, series = generate_uid(), generate_uid()
        numbers: list[int | None] = [*range(count - 2, 0, -1), None, 1]  # a duplicate 1
        random.Random(7).shuffle(numbers)
        answers = {}
        for n in numbers:
            sop = generate_uid()
            answers[sop] = (
                n,
                store(
                    make_dataset(
                        study_uid=study,
                        series_uid=series,
                        sop_uid=sop,
                        instance_number=n,
                        rows=4 + (n or 0),
                        columns=4,
                        SliceLocation=float(n or 0),
                    )
                ),
            )
        series_id = next(iter(answers.values()))[1]["ParentSeries"]
        for _ in range(2):  # the second listing is served from the tag cache: same answer
            response = await client.get("/api/orthanc/instances/", params={"series_id": series_id})
            assert response.status_code == 200
            body = response.json()
            expected = sorted(
                answers.items(), key=lambda kv: (kv[1][0] is None, kv[1][0] or 0, kv[0])
            )
            assert [i["sopInstanceUID"] for i in body] == [sop for sop, _ in expected]
            assert [i["instanceNumberInt"] for i in body] == [n for _, (n, _) in expected]
            assert [i["rows"] for i in body] == [str(4 + (n or 0)) for _, (n, _) in expected]
            assert [i["orthancId"] for i in body] == [a["ID"] for _, (_, a) in expected]
            assert body[-1]["instanceNumber"] is None


class TestPatientImages:
    async def test_unknown_patient_is_404(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess
    ) -> None:
        response = await client.get(f"/api/orthanc/patients/{UNKNOWN_ID}/images/")
        assert_error(response, 404, "NotFound", f"No patient with Orthanc ID {UNKNOWN_ID}")

    async def test_flattened_with_preview_urls(
        self, client: httpx.AsyncClient, store: Store
    ) -> None:
        study, series = generate_uid(), generate_uid()
        second = store(make_dataset(study_uid=study, series_uid=series, instance_number=2))
        first = store(make_dataset(study_uid=study, series_uid=series, instance_number=1))
        store(make_dataset(patient_id="OTHER"))  # another patient's image is not listed
        response = await client.get(f"/api/orthanc/patients/{first['ParentPatient']}/images/")
        assert response.status_code == 200
        assert response.json() == {
            "success": True,
            "images": [
                {
                    "study_id": a["ParentStudy"],
                    "series_id": a["ParentSeries"],
                    "instance_id": a["ID"],
                    "preview_url": f"/api/orthanc/instances/{a['ID']}/preview/",
                }
                for a in (first, second)
            ],
        }
        preview = await client.get(response.json()["images"][0]["preview_url"])
        assert preview.status_code == 200
        assert preview.headers["content-type"] == "image/png"


class TestInstanceTagCache:
    async def test_a_replaced_file_is_never_described_by_the_old_entry(
        self, client: httpx.AsyncClient, store: Store, clean_orthanc: OrthancProcess
    ) -> None:
        study, series, sop = generate_uid(), generate_uid(), generate_uid()
        ids = {"study_uid": study, "series_uid": series, "sop_uid": sop}
        first = store(make_dataset(rows=4, columns=4, SliceThickness=1.0, **ids))
        params = {"series_id": first["ParentSeries"]}
        before = (await client.get("/api/orthanc/instances/", params=params)).json()
        assert [(i["rows"], i["sliceThickness"]) for i in before] == [("4", "1.0")]
        # Same SOP Instance UID, so the same Orthanc IDs; a different stored file.
        async with httpx.AsyncClient(base_url=clean_orthanc.url) as direct:
            assert (await direct.delete(f"/instances/{first['ID']}")).status_code == 200
        again = store(make_dataset(rows=6, columns=4, SliceThickness=2.5, **ids))
        assert again["ID"] == first["ID"]
        after = (await client.get("/api/orthanc/instances/", params=params)).json()
        assert [(i["rows"], i["sliceThickness"]) for i in after] == [("6", "2.5")]
