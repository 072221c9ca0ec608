"""Request and response models of the patient cache, and the value rules they enforce."""

from __future__ import annotations

import datetime
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, JsonValue

from dicomgate.kit.clock import utcnow
from dicomgate.patients.models import NAME_MAX, PATIENT_ID_MAX

Gender = Literal["male", "female", "other", "unknown"]

# PS3.5 §6.2: LO and PN exclude control characters other than ESC (which only introduces
# character-set escapes; a patient cache has no use for it), and LO excludes the backslash.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NAME_FORBIDDEN = ("^", "=", "\\")
_GENDER_ALIASES = {"m": "male", "f": "female", "o": "other", "u": "unknown", "": "unknown"}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$|^\d{8}$")


def check_patient_id(value: str) -> str:
    """A Patient ID (0010,0020) is LO: 1–64 characters, no backslash, no control characters."""
    value = value.strip()
    if not value:
        raise ValueError("patient_id must not be empty")
    if len(value) > PATIENT_ID_MAX:
        raise ValueError(f"patient_id is longer than {PATIENT_ID_MAX} characters (DICOM LO)")
    if "\\" in value:
        raise ValueError("patient_id must not contain a backslash (DICOM LO)")
    if _CONTROL.search(value):
        raise ValueError("patient_id must not contain control characters (DICOM LO)")
    return value


def check_name_component(value: str) -> str:
    """A family or given name is one PN component: no ``^``, ``=`` or ``\\`` (PS3.5 §6.2.1)."""
    value = value.strip()
    if len(value) > NAME_MAX:
        raise ValueError(f"longer than {NAME_MAX} characters (DICOM PN component group)")
    for char in _NAME_FORBIDDEN:
        if char in value:
            raise ValueError(f"must not contain {char!r} (a DICOM PN delimiter)")
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (DICOM PN)")
    return value


def parse_birth_date(value: Any) -> Any:
    """Accept ``YYYY-MM-DD`` (or DICOM ``YYYYMMDD``), empty for unknown; nothing else."""
    if value is None or isinstance(value, datetime.date):
        return value
    if not isinstance(value, str):
        raise ValueError("birth_date must be an ISO date string YYYY-MM-DD")
    value = value.strip()
    if not value:
        return None
    if not _ISO_DATE.match(value):
        raise ValueError("birth_date must be an ISO date YYYY-MM-DD")
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"birth_date {value!r} is not a real calendar date") from None


def check_birth_date(value: datetime.date | None) -> datetime.date | None:
    """A birth date cannot lie in the future (UTC date, with a day's slack for time zones)."""
    today = utcnow().date()
    if value is not None and value > today + datetime.timedelta(days=1):
        raise ValueError("birth_date must not be in the future")
    return value


def normalise_gender(value: Any) -> Any:
    """Case-insensitive; DICOM's ``M``/``F``/``O`` and ``U``/empty are accepted as aliases."""
    if value is None:
        return "unknown"
    if isinstance(value, str):
        lowered = value.strip().lower()
        return _GENDER_ALIASES.get(lowered, lowered)
    return value


NameComponent = Annotated[str, AfterValidator(check_name_component)]
PatientId = Annotated[str, AfterValidator(check_patient_id)]
BirthDate = Annotated[
    datetime.date | None, BeforeValidator(parse_birth_date), AfterValidator(check_birth_date)
]
GenderField = Annotated[Gender, BeforeValidator(normalise_gender)]


class PatientFields(BaseModel):
    """What ``PUT /api/ris/patients/{patient_id}/`` accepts (the ID comes from the path)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "family_name": "Doe",
                    "given_name": "Jane",
                    "birth_date": "1970-01-31",
                    "gender": "female",
                }
            ]
        },
    )

    family_name: NameComponent = Field(default="", description="Family name (no ^ = \\).")
    given_name: NameComponent = Field(default="", description="Given name (no ^ = \\).")
    birth_date: BirthDate = Field(default=None, description="ISO YYYY-MM-DD, not in the future.")
    gender: GenderField = Field(
        default="unknown", description="male, female, other or unknown (M/F/O/U accepted)."
    )
    patient_id: PatientId | None = Field(
        default=None, description="Optional; when given it must equal the ID in the path."
    )


class PatientRecord(PatientFields):
    """One complete patient record, as validated for an upsert or an import row."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "patient_id": "P001",
                    "family_name": "Doe",
                    "given_name": "Jane",
                    "birth_date": "1970-01-31",
                    "gender": "female",
                }
            ]
        },
    )

    patient_id: PatientId = Field(description="Patient ID (DICOM LO: 1–64 chars, no \\).")


class PatientSummary(BaseModel):
    """A patient in the search result (the front end's shape)."""

    patient_id: str
    name: str = Field(description="DICOM PN form Family^Given.")
    birth_date: datetime.date | None = Field(description="ISO YYYY-MM-DD or null.")
    gender: Gender


class PatientDetail(PatientSummary):
    """A patient with its name parts and timestamps."""

    family_name: str
    given_name: str
    created_at: datetime.datetime
    updated_at: datetime.datetime


_SUMMARY_EXAMPLE: dict[str, JsonValue] = {
    "patient_id": "PAT-0001",
    "name": "Doe^Jane",
    "birth_date": "1970-01-31",
    "gender": "female",
}
_DETAIL_EXAMPLE: dict[str, JsonValue] = {
    **_SUMMARY_EXAMPLE,
    "family_name": "Doe",
    "given_name": "Jane",
    "created_at": "2026-01-02T10:00:00Z",
    "updated_at": "2026-01-02T10:00:00Z",
}


class PatientSearchResponse(BaseModel):
    """``GET /api/ris/patients/``: matches ordered by family, given name and ID."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"success": True, "patients": [_SUMMARY_EXAMPLE], "total": 1}]
        }
    )

    success: Literal[True] = True
    patients: list[PatientSummary]
    total: int = Field(description="Number of matches before the limit was applied.")


class PatientResponse(BaseModel):
    """One patient."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"success": True, "patient": _DETAIL_EXAMPLE}]}
    )

    success: Literal[True] = True
    patient: PatientDetail


class PatientUpsertResponse(PatientResponse):
    """The stored patient, and whether the PUT created it (201) or updated it (200)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"success": True, "created": True, "patient": _DETAIL_EXAMPLE}]
        }
    )

    created: bool


class PatientDeleteResponse(BaseModel):
    """The patient that was removed from the cache."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"success": True, "deleted": "PAT-0001"}]}
    )

    success: Literal[True] = True
    deleted: str


class RejectedRow(BaseModel):
    """One import row that was not stored, and why."""

    row: int = Field(description="1-based record number (CSV: not counting the header).")
    patient_id: str | None = Field(description="The row's patient_id as given, if any.")
    error: str


class ImportReport(BaseModel):
    """What a bulk import did; rejected rows never stop the valid ones from being stored."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "success": True,
                    "format": "csv",
                    "rows": 3,
                    "inserted": 1,
                    "updated": 1,
                    "rejected": 1,
                    "rejected_rows": [
                        {
                            "row": 3,
                            "patient_id": "PAT-0003",
                            "error": "gender: Input should be 'male', 'female', 'other' or "
                            "'unknown'",
                        }
                    ],
                }
            ]
        }
    )

    success: Literal[True] = True
    format: Literal["csv", "json"]
    rows: int = Field(description="Records read from the file.")
    inserted: int
    updated: int
    rejected: int
    rejected_rows: list[RejectedRow]
