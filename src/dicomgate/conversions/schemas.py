"""Request and response bodies of the conversions admin API."""

from __future__ import annotations

import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ConversionRequest(BaseModel):
    """Which studies to convert (exactly one selector) and whether only to measure."""

    model_config = ConfigDict(extra="forbid")

    study_instance_uid: str | None = Field(default=None, max_length=64, description="One study.")
    patient_id: str | None = Field(
        default=None, max_length=64, description="Every study of one patient."
    )
    all: bool = Field(default=False, description="Every study in Orthanc.")
    shard: str | None = Field(
        default=None,
        pattern=r"^\d+/\d+$",
        description="With all: only shard K/N (stable hash of the UID).",
    )
    dry_run: bool = Field(default=False, description="Measure only; change nothing.")
    concurrency: int = Field(default=2, ge=1, le=32, description="Instances in flight.")

    @model_validator(mode="after")
    def _one_selector(self) -> ConversionRequest:
        chosen = [self.study_instance_uid is not None, self.patient_id is not None, self.all]
        if sum(chosen) != 1:
            raise ValueError("choose exactly one of study_instance_uid, patient_id or all")
        if self.shard is not None and not self.all:
            raise ValueError("shard splits all studies; use it with all")
        return self


class ConversionJobOut(BaseModel):
    """A conversion job: its selectors, state and counts."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    selector: Literal["study", "patient", "all"]
    selector_value: str | None
    shard: str | None
    dry_run: bool
    state: Literal["pending", "running", "interrupted", "completed", "cancelled", "failed"]
    cancel_requested: bool
    instances_total: int
    converted: int = Field(description="Converted (dry run: would be converted).")
    skipped: int
    failed: int
    skipped_by_reason: dict[str, int]
    bytes_before: int
    bytes_after: int = Field(description="After conversion (dry run: projected, an estimate).")
    current_study: str | None
    errors: list[str]
    created_at: datetime.datetime | None
    started_at: datetime.datetime | None
    finished_at: datetime.datetime | None


class ConversionJobList(BaseModel):
    jobs: list[ConversionJobOut]
