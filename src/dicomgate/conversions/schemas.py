"""Request and response bodies of the conversions admin API."""

from __future__ import annotations

import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ConversionRequest(BaseModel):
    """Which studies to convert (exactly one selector) and whether only to measure."""

    model_config = ConfigDict(extra="forbid")

    study_instance_uid: str | None = Field(default=None, max_length=64, description="One study.")
    patient_id: str | None = Field(
        default=None, max_length=64, description="Every study of one patient."
    )
    all: bool = Field(default=False, description="Every study in Orthanc.")
    dry_run: bool = Field(default=False, description="Measure only; change nothing.")
    sample: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Dry run: instances to transcode for the estimate (default: "
        "DICOMGATE_CONVERSION_SAMPLE_SIZE).",
    )
    exact: bool = Field(
        default=False, description="Dry run: transcode every candidate (exact bytes, slower)."
    )
    concurrency: int = Field(default=2, ge=1, le=32, description="Instances in flight.")

    @model_validator(mode="after")
    def _one_selector(self) -> ConversionRequest:
        chosen = [self.study_instance_uid is not None, self.patient_id is not None, self.all]
        if sum(chosen) != 1:
            raise ValueError("choose exactly one of study_instance_uid, patient_id or all")
        if (self.sample is not None or self.exact) and not self.dry_run:
            raise ValueError("sample and exact apply to a dry run (dry_run: true)")
        if self.sample is not None and self.exact:
            raise ValueError("choose either sample or exact, not both")
        return self


class StudyEstimateOut(BaseModel):
    """One study in a dry run: counts exact, projected bytes estimated."""

    study_instance_uid: str
    to_convert: int
    skipped: dict[str, int]
    failed: int
    bytes_now: int
    bytes_projected: int


class ConversionEstimateOut(BaseModel):
    """How a dry run's projected bytes and time were obtained (read ``note``)."""

    note: str = Field(description="In words: what is exact and what is an estimate, from what.")
    exact: bool = Field(description="True when every candidate was transcoded.")
    candidates: int = Field(description="Instances the tags show as convertible.")
    to_convert: int
    sampled: int = Field(description="Instances downloaded and transcoded (never stored).")
    sampled_converted: int
    sampled_skipped: dict[str, int]
    sampled_failed: int
    ratio: float | None = Field(description="Measured size after / before (byte-weighted).")
    ratio_min: float | None
    ratio_max: float | None
    bytes_after_low: int = Field(description="Projected bytes after, at the lowest ratio seen.")
    bytes_after_high: int = Field(description="Projected bytes after, at the highest ratio seen.")
    seconds_per_instance: float | None = Field(
        description="Measured download + transcode, plus the replacement steps (estimated)."
    )
    projected_seconds: float | None = Field(description="Projected time of a real run.")
    concurrency: int
    journal_pending: int = Field(description="Unfinished replacements left for the next run.")
    studies: list[StudyEstimateOut] = Field(description="Per study (at most 1000).")
    studies_omitted: int


_NOTE = (
    "Estimate: projected bytes and time are extrapolated from 20 sampled instances (downloaded "
    "and transcoded, nothing stored) out of 480 candidates; skipped instances and reasons are "
    "exact (read from Orthanc's tags). Compression ratio seen: 0.38–0.61 (size after / before)."
)
JOB_EXAMPLE: dict[str, Any] = {
    "id": 12,
    "selector": "study",
    "selector_value": "1.2.826.0.1.3680043.10.9.5",
    "shard": None,
    "dry_run": True,
    "state": "completed",
    "cancel_requested": False,
    "instances_total": 482,
    "converted": 480,
    "skipped": 2,
    "failed": 0,
    "skipped_by_reason": {"no_pixel_data": 2},
    "bytes_before": 252_706_816,
    "bytes_after": 116_245_135,
    "current_study": None,
    "errors": [],
    "created_at": "2026-11-23T17:30:00Z",
    "started_at": "2026-11-23T17:30:00Z",
    "finished_at": "2026-11-23T17:30:09Z",
    "retried": 0,
    "sample_size": 20,
    "estimate": {
        "note": _NOTE,
        "exact": False,
        "candidates": 480,
        "to_convert": 480,
        "sampled": 20,
        "sampled_converted": 20,
        "sampled_skipped": {},
        "sampled_failed": 0,
        "ratio": 0.46,
        "ratio_min": 0.38,
        "ratio_max": 0.61,
        "bytes_after_low": 96_024_326,
        "bytes_after_high": 154_134_158,
        "seconds_per_instance": 0.21,
        "projected_seconds": 50.4,
        "concurrency": 2,
        "journal_pending": 0,
        "studies": [
            {
                "study_instance_uid": "1.2.826.0.1.3680043.10.9.5",
                "to_convert": 480,
                "skipped": {"no_pixel_data": 2},
                "failed": 0,
                "bytes_now": 252_706_816,
                "bytes_projected": 116_245_135,
            }
        ],
        "studies_omitted": 0,
    },
}


class ConversionJobOut(BaseModel):
    """A conversion job: its selectors, state and counts."""

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [JOB_EXAMPLE]})

    id: int
    selector: Literal["study", "patient", "all", "series"]
    selector_value: str | None = Field(
        description="The study's UID, the patient's ID (selector series: the study's UID)."
    )
    shard: str | None = Field(
        default=None,
        description="Always null: shards were removed (workers share the studies of a job); "
        "set only on jobs of older versions.",
    )
    origin: str | None = Field(
        default=None, description="Who asked: null for an administrator, rule:<name> for a rule."
    )
    series_ids: list[str] | None = Field(
        default=None, description="Selector series: the Orthanc IDs of its series."
    )
    target_syntax: str | None = Field(
        default=None, description="What it converts to (null: DICOMGATE_TARGET_SYNTAX)."
    )
    dry_run: bool
    state: Literal["pending", "running", "interrupted", "completed", "cancelled", "failed"]
    cancel_requested: bool
    instances_total: int
    converted: int = Field(description="Converted (dry run: would be converted).")
    skipped: int
    failed: int
    skipped_by_reason: dict[str, int]
    bytes_before: int
    bytes_after: int = Field(
        description="After conversion (dry run: projected, an estimate — see estimate.note)."
    )
    retried: int = Field(description="Retries of instances whose earlier attempt failed.")
    sample_size: int | None = Field(description="Dry run: the sample asked for (null: all).")
    estimate: ConversionEstimateOut | None = Field(
        description="Dry run: how projected bytes and time were estimated."
    )
    current_study: str | None
    errors: list[str]
    created_at: datetime.datetime | None
    started_at: datetime.datetime | None
    finished_at: datetime.datetime | None


class ConversionJobList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"jobs": [JOB_EXAMPLE]}]})

    jobs: list[ConversionJobOut]
