"""The service functions other domains call (ingest), the DICOM demographics, and the CLI."""

from __future__ import annotations

import asyncio
import datetime
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from dicomgate.dicom.demographics import Demographics
from dicomgate.patients.service import get_patient
from dicomgate.settings import Settings
from tests.patients.helpers import PutPatient

PROJECT = Path(__file__).resolve().parents[2]


class TestDemographics:
    @pytest.mark.parametrize(
        ("gender", "sex"), [("male", "M"), ("female", "F"), ("other", "O"), ("unknown", "")]
    )
    def test_dicom_values(self, gender: str, sex: str) -> None:
        demo = Demographics(
            patient_id="P1",
            family_name="Doe",
            given_name="Jane",
            birth_date=datetime.date(1970, 1, 31),
            gender=gender,
        )
        assert (demo.dicom_name, demo.dicom_birth_date, demo.dicom_sex) == (
            "Doe^Jane",
            "19700131",
            sex,
        )

    def test_unknown_birth_date_is_empty(self) -> None:
        demo = Demographics("P1", "Doe", "", None, "unknown")
        assert (demo.dicom_name, demo.dicom_birth_date) == ("Doe", "")

    @pytest.mark.parametrize(
        ("family", "given", "name"),
        [("Doe", "", "Doe"), ("", "Jane", "^Jane"), ("", "", ""), ("Doe", "Jane", "Doe^Jane")],
    )
    def test_no_trailing_component_delimiter(self, family: str, given: str, name: str) -> None:
        """PS3.5 §6.2.1.1: a family name alone is ``Doe``, not ``Doe^``."""
        assert Demographics("P1", family, given, None, "unknown").dicom_name == name


class TestGetPatient:
    async def test_known_patient_gives_demographics_unknown_gives_none(
        self, api: httpx.AsyncClient, put_patient: PutPatient, patients_app: FastAPI
    ) -> None:
        await put_patient(
            "P-42", family_name="Roe", given_name="Rick", gender="male", birth_date="1980-02-29"
        )
        async with patients_app.state.runtime.sessions() as session:
            patient = await get_patient(session, patient_id="P-42")
            missing = await get_patient(session, patient_id="p-42")  # IDs are exact
        assert patient is not None and missing is None
        assert patient.demographics() == Demographics(
            patient_id="P-42",
            family_name="Roe",
            given_name="Rick",
            birth_date=datetime.date(1980, 2, 29),
            gender="male",
        )


class TestImportCommand:
    def _run(self, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DICOMGATE_DATABASE_URL": database_url}
        return subprocess.run(
            [sys.executable, "-m", "dicomgate.cli", "patients", "import", *args],
            cwd=PROJECT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    async def test_cli_imports_reports_and_exits_1_on_rejected_rows(
        self, api: httpx.AsyncClient, database_url: str, tmp_path: Path
    ) -> None:
        good = tmp_path / "good.json"
        good.write_text(
            '[{"patient_id": "C-1", "family_name": "Cli", "given_name": "One", "gender": "F"}]'
        )
        done = await asyncio.to_thread(self._run, database_url, str(good))
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "1 row read (json): 1 inserted, 0 updated, 0 rejected"

        mixed = tmp_path / "mixed.csv"
        mixed.write_text(
            "patient_id;family_name;given_name;birth_date;gender\n"
            "C-1;Cli;Uno;;female\n"
            "C-2;Bad\\Name;X;;male\n"
        )
        done = await asyncio.to_thread(self._run, database_url, str(mixed))
        assert done.returncode == 1, done.stderr
        assert done.stdout.splitlines() == [
            "2 rows read (csv): 0 inserted, 1 updated, 1 rejected",
            "  row 2 (patient_id 'C-2'): family_name: must not contain '\\\\' "
            "(a DICOM PN delimiter)",
        ]
        patient = (await api.get("/api/ris/patients/C-1/")).json()["patient"]
        assert (patient["name"], patient["gender"]) == ("Cli^Uno", "female")
        assert (await api.get("/api/ris/patients/C-2/")).status_code == 404


def test_cli_unknown_format_exits_2_with_message(tmp_path: Path, settings: Settings) -> None:
    odd = tmp_path / "patients.txt"
    odd.write_text("patient_id\nX\n")
    done = TestImportCommand()._run(settings.database_url, str(odd))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: Cannot tell the format of 'patients.txt' (content type none): "
        "send a .csv or .json file"
    )
    assert done.stdout == ""


def test_cli_refuses_unmigrated_database(tmp_path: Path) -> None:
    rows = tmp_path / "p.csv"
    rows.write_text("patient_id\nX\n")
    done = TestImportCommand()._run(f"sqlite+aiosqlite:///{tmp_path / 'new.db'}", str(rows))
    assert done.returncode == 2
    assert "run `dicomgate db upgrade`" in done.stderr
