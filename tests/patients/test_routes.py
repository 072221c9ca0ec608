"""The patient-cache routes through the real app, on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from dicomgate.patients.service import get_patient
from tests.patients.helpers import PutPatient

BASE = "/api/ris/patients"


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert set(body) == {"success", "error", "type"}
    message: str = body["error"]
    return message


class TestUpsert:
    async def test_put_creates_201_then_updates_200(self, api: httpx.AsyncClient) -> None:
        body = {
            "family_name": "Doe",
            "given_name": "Jane",
            "birth_date": "1970-01-31",
            "gender": "female",
        }
        created = await api.put(f"{BASE}/PAT-1/", json=body)
        assert created.status_code == 201, created.text
        first = created.json()
        assert first["success"] is True and first["created"] is True
        patient = first["patient"]
        assert {k: patient[k] for k in ("patient_id", "name", "birth_date", "gender")} == {
            "patient_id": "PAT-1",
            "name": "Doe^Jane",
            "birth_date": "1970-01-31",
            "gender": "female",
        }
        assert (patient["family_name"], patient["given_name"]) == ("Doe", "Jane")
        created_at = datetime.datetime.fromisoformat(patient["created_at"])
        assert created_at.tzinfo is not None
        assert abs(datetime.datetime.now(datetime.UTC) - created_at) < datetime.timedelta(minutes=5)

        changed = {**body, "given_name": "Janet", "birth_date": None, "gender": "other"}
        updated = await api.put(f"{BASE}/PAT-1/", json=changed)
        assert updated.status_code == 200, updated.text
        second = updated.json()
        assert second["created"] is False
        assert second["patient"]["name"] == "Doe^Janet"
        assert second["patient"]["birth_date"] is None
        assert second["patient"]["gender"] == "other"
        assert second["patient"]["created_at"] == patient["created_at"]

        fetched = await api.get(f"{BASE}/PAT-1/")
        assert fetched.status_code == 200
        assert fetched.json()["patient"] == second["patient"]

    async def test_patient_id_with_slash_and_unicode_round_trips(
        self, api: httpx.AsyncClient
    ) -> None:
        for patient_id in ("2024/0001", "Åsa-7 ü"):
            created = await api.put(f"{BASE}/{patient_id}/", json={"family_name": "Ström"})
            assert created.status_code == 201, created.text
            assert created.json()["patient"]["patient_id"] == patient_id
            fetched = await api.get(f"{BASE}/{patient_id}/")
            assert fetched.json()["patient"]["name"] == "Ström"  # no trailing ^
        assert (await api.delete(f"{BASE}/2024/0001/")).json()["deleted"] == "2024/0001"
        assert (await api.get(f"{BASE}/")).json()["total"] == 1

    async def test_dicom_aliases_and_iso_basic_date_are_normalised(
        self, api: httpx.AsyncClient
    ) -> None:
        response = await api.put(
            f"{BASE}/PAT-2/",
            json={
                "family_name": " Roe ",
                "given_name": "Rick",
                "birth_date": "19800229",
                "gender": "M",
            },
        )
        assert response.status_code == 201, response.text
        patient = response.json()["patient"]
        assert (patient["name"], patient["birth_date"], patient["gender"]) == (
            "Roe^Rick",
            "1980-02-29",
            "male",
        )

    @pytest.mark.parametrize(
        ("patient_id", "body", "message"),
        [
            ("A%5CB", {}, "backslash"),
            ("X" * 65, {}, "longer than 64"),
            ("A%01B", {}, "control characters"),
            ("%20%20", {}, "must not be empty"),
            ("P1", {"family_name": "Doe^Jane"}, "'^'"),
            ("P1", {"given_name": "A=B"}, "'='"),
            ("P1", {"given_name": "A\\B"}, "'\\\\'"),
            ("P1", {"gender": "x"}, "gender"),
            ("P1", {"birth_date": "31/01/1970"}, "ISO date"),
            ("P1", {"birth_date": "2023-02-30"}, "not a real calendar date"),
            ("P1", {"birth_date": "2999-01-01"}, "must not be in the future"),
            ("P1", {"patient_id": "P2"}, "differs from the path"),
            ("P1", {"shoe_size": 44}, "shoe_size"),
        ],
    )
    async def test_invalid_input_is_422_and_nothing_stored(
        self, api: httpx.AsyncClient, patient_id: str, body: dict[str, object], message: str
    ) -> None:
        response = await api.put(f"{BASE}/{patient_id}/", json={"family_name": "Doe", **body})
        assert message in _error(response, 422)
        listing = await api.get(f"{BASE}/")
        assert listing.json() == {"success": True, "patients": [], "total": 0}


class TestGetAndDelete:
    async def test_unknown_patient_is_404(self, api: httpx.AsyncClient) -> None:
        response = await api.get(f"{BASE}/NOPE/")
        assert _error(response, 404) == "No patient with patient_id 'NOPE'"
        assert response.json()["type"] == "PatientRecordNotFound"

    async def test_delete_removes_only_that_patient(
        self, api: httpx.AsyncClient, put_patient: PutPatient
    ) -> None:
        await put_patient("KEEP")
        await put_patient("GONE")
        response = await api.delete(f"{BASE}/GONE/")
        assert response.status_code == 200
        assert response.json() == {"success": True, "deleted": "GONE"}
        _error(await api.get(f"{BASE}/GONE/"), 404)
        assert (await api.get(f"{BASE}/KEEP/")).status_code == 200
        assert "GONE" in _error(await api.delete(f"{BASE}/GONE/"), 404)


class TestSearch:
    @pytest.fixture
    async def people(self, put_patient: PutPatient) -> None:
        await put_patient("ID-003", family_name="Smith", given_name="Anna", birth_date="1990-05-06")
        await put_patient("ID-001", family_name="Doe", given_name="John", gender="male")
        await put_patient("ID-002", family_name="Doe", given_name="Jane")
        await put_patient("XY_9", family_name="Brown", given_name="Joe", gender="male")
        await put_patient("ZZ%1", family_name="Green", given_name="Eve")

    async def _ids(self, api: httpx.AsyncClient, **params: str | int) -> tuple[list[str], int]:
        response = await api.get(f"{BASE}/", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["success"] is True
        return [p["patient_id"] for p in body["patients"]], body["total"]

    async def test_no_search_lists_all_ordered_by_family_given_id(
        self, api: httpx.AsyncClient, people: None
    ) -> None:
        response = await api.get(f"{BASE}/")
        body = response.json()
        assert body["total"] == 5
        assert [p["name"] for p in body["patients"]] == [
            "Brown^Joe",
            "Doe^Jane",
            "Doe^John",
            "Green^Eve",
            "Smith^Anna",
        ]
        assert body["patients"][4] == {
            "patient_id": "ID-003",
            "name": "Smith^Anna",
            "birth_date": "1990-05-06",
            "gender": "female",
        }
        assert body["patients"][0]["birth_date"] is None

    @pytest.mark.parametrize(
        ("search", "expected"),
        [
            ("id-00", ["ID-002", "ID-001", "ID-003"]),  # partial ID, case-insensitive
            ("DOE", ["ID-002", "ID-001"]),  # family
            ("ann", ["ID-003"]),  # given
            ("doe^ja", ["ID-002"]),  # Family^Given
            ("  smith ", ["ID-003"]),  # surrounding blanks ignored
            ("%", ["ZZ%1"]),  # LIKE wildcards are literal
            ("_", ["XY_9"]),
            ("nobody", []),
        ],
    )
    async def test_partial_case_insensitive_match(
        self, api: httpx.AsyncClient, people: None, search: str, expected: list[str]
    ) -> None:
        assert await self._ids(api, search=search) == (expected, len(expected))

    async def test_order_ignores_case_and_ties_break_on_patient_id(
        self, api: httpx.AsyncClient, put_patient: PutPatient
    ) -> None:
        await put_patient("Z2", family_name="zed", given_name="Al")
        await put_patient("D2", family_name="de Vries", given_name="Bo")
        await put_patient("D1", family_name="Doe", given_name="al")
        await put_patient("D0", family_name="Doe", given_name="Al")
        await put_patient("A1", family_name="Abel", given_name="Zoe")
        assert await self._ids(api) == (["A1", "D2", "D0", "D1", "Z2"], 5)

    async def test_limit_caps_rows_but_total_counts_all_matches(
        self, api: httpx.AsyncClient, people: None
    ) -> None:
        assert await self._ids(api, limit=2) == (["XY_9", "ID-002"], 5)
        assert await self._ids(api, search="doe", limit=1) == (["ID-002"], 2)

    @pytest.mark.parametrize("limit", ["0", "501", "-3", "many"])
    async def test_limit_out_of_range_is_422_json(self, api: httpx.AsyncClient, limit: str) -> None:
        message = _error(await api.get(f"{BASE}/", params={"limit": limit}), 422)
        assert message.startswith("Invalid request: limit:")


class TestImport:
    CSV = (
        "patient_id,family_name,given_name,birth_date,gender\n"
        "NEW-1,Doe,Jane,1970-01-31,female\n"
        "OLD-1,Updated,Name,,M\n"
        "BAD-1,Doe^X,Y,1970-01-01,female\n"
        ",NoId,Person,,\n"
        "BAD-2,Ok,Name,1970-13-01,male\n"
        "BAD-3,Ok,Name,,robot\n"
        "NEW-1,Dup,Licate,,\n"
        "NEW-2,Last,Row,2000-02-29,other\n"
    )

    async def test_csv_bad_rows_are_reported_and_good_rows_stored(
        self, api: httpx.AsyncClient, put_patient: PutPatient
    ) -> None:
        await put_patient("OLD-1", family_name="Old", given_name="Name", birth_date="1950-01-01")
        response = await api.post(
            f"{BASE}/import/", files={"file": ("patients.csv", self.CSV.encode(), "text/csv")}
        )
        assert response.status_code == 200, response.text
        report = response.json()
        assert {
            k: report[k] for k in ("success", "format", "rows", "inserted", "updated", "rejected")
        } == {
            "success": True,
            "format": "csv",
            "rows": 8,
            "inserted": 2,
            "updated": 1,
            "rejected": 5,
        }
        reasons = {r["row"]: (r["patient_id"], r["error"]) for r in report["rejected_rows"]}
        assert sorted(reasons) == [3, 4, 5, 6, 7]
        assert reasons[3][0] == "BAD-1" and "'^'" in reasons[3][1]
        assert reasons[4][0] == "" and "patient_id must not be empty" in reasons[4][1]
        assert "not a real calendar date" in reasons[5][1]
        assert reasons[6][1].startswith("gender:")
        assert reasons[7] == (
            "NEW-1",
            "duplicate patient_id in this file (first at row 1); not applied",
        )

        old = (await api.get(f"{BASE}/OLD-1/")).json()["patient"]
        assert (old["name"], old["birth_date"], old["gender"]) == ("Updated^Name", None, "male")
        new = (await api.get(f"{BASE}/NEW-1/")).json()["patient"]
        assert (new["name"], new["birth_date"], new["gender"]) == (
            "Doe^Jane",
            "1970-01-31",
            "female",
        )
        ids, total = [], 0
        listing = (await api.get(f"{BASE}/")).json()
        ids, total = [p["patient_id"] for p in listing["patients"]], listing["total"]
        assert total == 3 and sorted(ids) == ["NEW-1", "NEW-2", "OLD-1"]

    async def test_json_list_and_search_answer_shape_both_import(
        self, api: httpx.AsyncClient
    ) -> None:
        rows = [
            {
                "patient_id": "J-1",
                "family_name": "Ja",
                "given_name": "Son",
                "birth_date": "2001-01-01",
                "gender": "female",
            },
            "not an object",
            {"patient_id": "J-2", "birth_date": 20010101},
        ]
        response = await api.post(
            f"{BASE}/import/",
            files={"file": ("export", json.dumps(rows).encode(), "application/json")},
        )
        report = response.json()
        assert (report["format"], report["inserted"], report["rejected"]) == ("json", 1, 2)
        assert [r["row"] for r in report["rejected_rows"]] == [2, 3]
        assert report["rejected_rows"][0]["error"] == "the record is not a JSON object"
        assert "birth_date" in report["rejected_rows"][1]["error"]

        # The search answer re-imports as is (name in Family^Given form).
        exported = (await api.get(f"{BASE}/")).content
        await api.delete(f"{BASE}/J-1/")
        again = await api.post(
            f"{BASE}/import/", files={"file": ("patients.json", exported, "application/json")}
        )
        assert (again.json()["inserted"], again.json()["rejected"]) == (1, 0)
        patient = (await api.get(f"{BASE}/J-1/")).json()["patient"]
        assert (patient["family_name"], patient["given_name"], patient["birth_date"]) == (
            "Ja",
            "Son",
            "2001-01-01",
        )

    @pytest.mark.parametrize(
        ("name", "content", "ctype", "status", "message"),
        [
            ("p.xlsx", b"PK\x03\x04", "application/octet-stream", 415, "send a .csv or .json"),
            ("p.json", b"{not json", "application/json", 400, "not valid JSON"),
            ("p.json", b'{"rows": []}', "application/json", 400, "list of patient objects"),
            ("p.csv", b"id,name\n1,x\n", "text/csv", 400, "no patient_id column"),
            ("p.csv", b"", "text/csv", 400, "empty"),
            ("p.csv", b"patient_id\n\xff\xfe\n", "text/csv", 400, "not UTF-8"),
        ],
    )
    async def test_unreadable_file_is_rejected_whole_and_nothing_stored(
        self,
        api: httpx.AsyncClient,
        name: str,
        content: bytes,
        ctype: str,
        status: int,
        message: str,
    ) -> None:
        response = await api.post(f"{BASE}/import/", files={"file": (name, content, ctype)})
        assert message in _error(response, status)
        assert (await api.get(f"{BASE}/")).json()["total"] == 0


class TestTransaction:
    async def test_put_is_committed_before_the_answer_is_sent(
        self, api: httpx.AsyncClient, patients_app: FastAPI
    ) -> None:
        """A 201 must mean "stored": the session commits before the response leaves."""
        seen: dict[str, bool] = {}

        async def spying_app(scope: Any, receive: Any, send: Any) -> None:
            async def spy(message: Any) -> None:
                if message["type"] == "http.response.start":
                    async with patients_app.state.runtime.sessions() as session:
                        found = await get_patient(session, patient_id="COMMIT-1")
                    seen["stored_when_answered"] = found is not None
                await send(message)

            await patients_app(scope, receive, spy)

        transport = httpx.ASGITransport(app=spying_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.put(f"{BASE}/COMMIT-1/", json={"family_name": "Tx"})
        assert response.status_code == 201, response.text
        assert seen == {"stored_when_answered": True}


class TestOpenApi:
    async def test_routes_are_documented_with_models_and_errors(
        self, api: httpx.AsyncClient
    ) -> None:
        schema = (await api.get("/openapi.json")).json()
        ops = {
            (method, path): op
            for path, item in schema["paths"].items()
            if path.startswith(BASE)
            for method, op in item.items()
        }
        assert {(m, p): o["operationId"] for (m, p), o in ops.items()} == {
            ("get", f"{BASE}/"): "searchPatients",
            ("post", f"{BASE}/import/"): "importPatients",
            ("get", f"{BASE}/{{patient_id}}/"): "getPatient",
            ("put", f"{BASE}/{{patient_id}}/"): "upsertPatient",
            ("delete", f"{BASE}/{{patient_id}}/"): "deletePatient",
        }
        for op in ops.values():
            assert op["tags"] == ["patients"] and op["summary"]
            assert "200" in op["responses"] and "422" in op["responses"]
        put = ops[("put", f"{BASE}/{{patient_id}}/")]["responses"]
        assert {"200", "201", "409", "422"} <= set(put)
        assert ops[("get", f"{BASE}/{{patient_id}}/")]["responses"]["404"]
        search = schema["components"]["schemas"]["PatientSearchResponse"]
        assert search["examples"][0]["patients"][0]["name"] == "Doe^Jane"


class TestImportLimits:
    async def test_import_over_the_cap_is_413_and_nothing_stored(
        self, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from dicomgate.patients import router

        monkeypatch.setattr(router, "MAX_IMPORT_BYTES", 64)
        rows = "patient_id,family_name\n" + "".join(f"P{i},Name\n" for i in range(20))
        response = await api.post(
            f"{BASE}/import/", files={"file": ("p.csv", rows.encode(), "text/csv")}
        )
        assert _error(response, 413) == "The import file is larger than 64 bytes"
        assert (await api.get(f"{BASE}/")).json()["total"] == 0
