"""camelCase response models of the browse API, exactly the shapes the existing front end reads.

Values are Orthanc's DICOM strings as stored (``"0.5\\\\0.5"``, ``"512"``), as the old system
returned them; ``instanceNumberInt`` is the parsed integer for sorting on the client.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

LevelName = Literal["patient", "study", "series", "instance"]


class PatientSummary(BaseModel):
    """One patient of ``GET /api/orthanc/patients/``."""

    orthancId: str
    patientId: str | None = Field(description="DICOM Patient ID (0010,0020).")
    patientName: str | None = Field(description="DICOM Patient's Name, `Family^Given`.")
    studiesCount: int

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "orthancId": "bdaf1eca-33d4619e-80e8ca68-9a1b74a4-febbbb29",
                    "patientId": "P2026-0001",
                    "patientName": "Doe^Jane",
                    "studiesCount": 3,
                }
            ]
        }
    )


class StudySummary(BaseModel):
    """One study of ``GET /api/orthanc/studies/?patient_id=``."""

    orthancId: str
    studyInstanceUID: str | None
    description: str | None = Field(description="Study Description (0008,1030).")
    studyDate: str | None = Field(description="Study Date, DICOM `YYYYMMDD`.")
    seriesCount: int

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "orthancId": "27dae44f-adb3f376-fb3dae7d-ebef9c0e-73e35019",
                    "studyInstanceUID": "1.2.840.113619.2.55.3",
                    "description": "Brain MRI",
                    "studyDate": "20260111",
                    "seriesCount": 4,
                }
            ]
        }
    )


class SeriesSummary(BaseModel):
    """One series of ``GET /api/orthanc/series/?study_id=``."""

    orthancId: str
    seriesInstanceUID: str | None
    modality: str | None
    description: str | None = Field(description="Series Description (0008,103E).")
    seriesNumber: str | None = Field(description="Series Number as stored (IS string).")
    instancesCount: int

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "orthancId": "83158671-a017acdd-5309325a-cfd91e95-3bbd5257",
                    "seriesInstanceUID": "1.2.840.113619.2.55.3.1",
                    "modality": "MR",
                    "description": "T1 AX",
                    "seriesNumber": "1",
                    "instancesCount": 24,
                }
            ]
        }
    )


class InstanceSummary(BaseModel):
    """One instance of ``GET /api/orthanc/instances/?series_id=``."""

    orthancId: str
    instanceNumber: str | None = Field(description="Instance Number as stored (IS string).")
    instanceNumberInt: int | None = Field(description="Instance Number parsed; null if absent.")
    sopInstanceUID: str | None
    rows: str | None
    columns: str | None
    pixelSpacing: str | None = Field(description="Pixel Spacing, backslash-separated.")
    sliceThickness: str | None
    sliceLocation: str | None
    imagePositionPatient: str | None = Field(description="Backslash-separated x\\y\\z.")
    patientId: str | None
    patientName: str | None
    studyInstanceUID: str | None
    seriesInstanceUID: str | None
    seriesNumber: str | None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "orthancId": "a37457cd-9b4efd8d-044c1f91-b79dd30d-91ecc07d",
                    "instanceNumber": "1",
                    "instanceNumberInt": 1,
                    "sopInstanceUID": "1.2.840.113619.2.55.3.1.1",
                    "rows": "512",
                    "columns": "512",
                    "pixelSpacing": "0.5\\0.5",
                    "sliceThickness": "1.0",
                    "sliceLocation": "-50.0",
                    "imagePositionPatient": "-100\\-100\\-50",
                    "patientId": "P2026-0001",
                    "patientName": "Doe^Jane",
                    "studyInstanceUID": "1.2.840.113619.2.55.3",
                    "seriesInstanceUID": "1.2.840.113619.2.55.3.1",
                    "seriesNumber": "1",
                }
            ]
        }
    )


class PatientImage(BaseModel):
    """One instance of a patient, flattened, with the URL of its PNG preview."""

    study_id: str = Field(description="Orthanc ID of the study.")
    series_id: str = Field(description="Orthanc ID of the series.")
    instance_id: str = Field(description="Orthanc ID of the instance.")
    preview_url: str = Field(description="dicomgate's preview route for the instance.")


class PatientImages(BaseModel):
    """``GET /api/orthanc/patients/{id}/images/``."""

    success: Literal[True] = True
    images: list[PatientImage]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "success": True,
                    "images": [
                        {
                            "study_id": "27dae44f-adb3f376-fb3dae7d-ebef9c0e-73e35019",
                            "series_id": "83158671-a017acdd-5309325a-cfd91e95-3bbd5257",
                            "instance_id": "a37457cd-9b4efd8d-044c1f91-b79dd30d-91ecc07d",
                            "preview_url": "/api/orthanc/instances/"
                            "a37457cd-9b4efd8d-044c1f91-b79dd30d-91ecc07d/preview/",
                        }
                    ],
                }
            ]
        }
    )


class ResourceRef(BaseModel):
    """A resource of the hierarchy, by level and Orthanc ID."""

    level: LevelName
    orthancId: str


class DeleteResult(BaseModel):
    """Answer of the four DELETEs.

    Orthanc removes parents left empty (deleting a series' last instance deletes the series, its
    study if that was its last series, and the patient likewise). ``remaining`` is the nearest
    ancestor that still exists (Orthanc's ``RemainingAncestor``), or null when nothing above the
    deleted resource remains (a patient, or a whole emptied branch).
    """

    success: Literal[True] = True
    deleted: ResourceRef
    remaining: ResourceRef | None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "success": True,
                    "deleted": {
                        "level": "instance",
                        "orthancId": "a37457cd-9b4efd8d-044c1f91-b79dd30d-91ecc07d",
                    },
                    "remaining": {
                        "level": "series",
                        "orthancId": "83158671-a017acdd-5309325a-cfd91e95-3bbd5257",
                    },
                }
            ]
        }
    )
