"""Response shapes of the upload routes (field names fixed by the existing front end)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class OrthancStoreAnswer(BaseModel):
    """Orthanc's answer to ``POST /instances``, as the front end reads it."""

    ID: str
    ParentPatient: str
    ParentStudy: str
    ParentSeries: str
    Path: str
    Status: str = Field(description="Success, or AlreadyStored for a file sent again.")


class UploadResult(BaseModel):
    """One stored file (the single-upload answer)."""

    success: Literal[True] = True
    message: str = Field(description="'Uploaded and converted successfully' or why unchanged.")
    filename: str = Field(description="The client's file name (a label).")
    patient_id: str | None = Field(description="Patient ID in the stored file.")
    orthanc_response: OrthancStoreAnswer
    source_transfer_syntax: str
    stored_transfer_syntax: str
    original_size: int = Field(description="Bytes uploaded.")
    stored_size: int = Field(description="Bytes stored in Orthanc.")
    converted: bool = Field(description="True when pixel data was re-encoded and verified.")
    pass_through_reason: str | None = Field(
        description="Why the file was stored unchanged (already_htj2k, lossy_source, …)."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "success": True,
                    "message": "Uploaded and converted successfully",
                    "filename": "CT_small.dcm",
                    "patient_id": "P001",
                    "orthanc_response": {
                        "ID": "f5b0c0a1-3f1b6c12-6b0d3c1e-9a4c0f55-5d2e7b3a",
                        "ParentPatient": "5b5f4c6e-8d1a2b3c-4d5e6f70-81920a1b-2c3d4e5f",
                        "ParentStudy": "0a1b2c3d-4e5f6071-8293a4b5-c6d7e8f9-0a1b2c3d",
                        "ParentSeries": "1b2c3d4e-5f607182-93a4b5c6-d7e8f90a-1b2c3d4e",
                        "Path": "/instances/f5b0c0a1-3f1b6c12-6b0d3c1e-9a4c0f55-5d2e7b3a",
                        "Status": "Success",
                    },
                    "source_transfer_syntax": "1.2.840.10008.1.2.1",
                    "stored_transfer_syntax": "1.2.840.10008.1.2.4.201",
                    "original_size": 39206,
                    "stored_size": 21540,
                    "converted": True,
                    "pass_through_reason": None,
                }
            ]
        }
    )


class FailedFile(BaseModel):
    """A file that was not stored, and why."""

    name: str = Field(description="The client's file name (or zip name/entry).")
    error: str = Field(description="A clear, specific reason.")
    type: str | None = Field(
        default=None,
        description="The error's class (e.g. PatientConflict, ContentConflict, NotDicom); "
        "null for a zip entry refused before it was read.",
    )


class MultiUploadResult(BaseModel):
    """The answer when several files were sent to the single-upload route."""

    success: bool = Field(description="True when every file was stored.")
    message: str
    patient_id: str | None = Field(description="The patient_id requested, if any.")
    uploaded: int = Field(description="Files stored.")
    results: list[UploadResult]
    failed_files: list[FailedFile]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "success": False,
                    "message": "Uploaded 1 of 2 files",
                    "patient_id": "P001",
                    "uploaded": 1,
                    "results": UploadResult.model_config["json_schema_extra"]["examples"],  # type: ignore[index]
                    "failed_files": [{"name": "notes.txt", "error": "The file is not DICOM"}],
                }
            ]
        }
    )


class FolderUploadResult(BaseModel):
    """The folder-upload answer: one study, one series per folder."""

    patientId: str
    studyUid: str = Field(description="The new StudyInstanceUID shared by every stored file.")
    studyId: str | None = Field(description="Orthanc's ID of that study (None if none stored).")
    studyDescription: str
    uploaded: int = Field(description="Files stored.")
    failedFiles: list[FailedFile]
    orthancSeriesIds: list[str] = Field(description="Orthanc series IDs, by series number.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "patientId": "P001",
                    "studyUid": "2.25.112233445566778899",
                    "studyId": "0a1b2c3d-4e5f6071-8293a4b5-c6d7e8f9-0a1b2c3d",
                    "studyDescription": "CT chest",
                    "uploaded": 120,
                    "failedFiles": [{"name": "notes.txt", "error": "The file is not DICOM"}],
                    "orthancSeriesIds": ["1b2c3d4e-5f607182-93a4b5c6-d7e8f90a-1b2c3d4e"],
                }
            ]
        }
    )
