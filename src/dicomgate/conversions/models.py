"""Conversion jobs and their per-instance outcomes (so a restarted run resumes, not restarts)."""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import OID
from sqlalchemy.orm import Mapped, mapped_column

from dicomgate.db import Base, UtcDateTime

JOB_STATES: tuple[str, ...] = (
    "pending",
    "running",
    "interrupted",
    "completed",
    "cancelled",
    "failed",
)
UNFINISHED_STATES: tuple[str, ...] = ("pending", "running", "interrupted")
OUTCOMES: tuple[str, ...] = ("converted", "skipped", "failed", "planned")


class ConversionJob(Base):
    """One run of ``convert-to-htj2k`` (CLI or API) over a selection of studies."""

    __tablename__ = "conversion_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    selector: Mapped[str] = mapped_column(String(16))  # study | patient | all | series
    selector_value: Mapped[str | None] = mapped_column(String(128), nullable=True)
    shard: Mapped[str | None] = mapped_column(String(32), nullable=True)  # "K/N"
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    instances_total: Mapped[int] = mapped_column(Integer, default=0)
    converted: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    skipped_by_reason: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    bytes_before: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_after: Mapped[int] = mapped_column(BigInteger, default=0)
    elapsed: Mapped[float] = mapped_column(default=0.0)
    current_study: Mapped[str | None] = mapped_column(String(128), nullable=True)
    errors: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Instances retried after an earlier failed attempt (each retry counts once).
    retried: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Dry run: instances transcoded to estimate sizes and time; None = every candidate (exact).
    sample_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Dry run: how the projected bytes and time were estimated (see conversions.estimate).
    estimate: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # What started the job: None for an administrator (API, CLI); "rule:<name>" for a
    # compression rule (see dicomgate.rules).
    origin: Mapped[str | None] = mapped_column(String(80), nullable=True, index=True)
    # Selector "series": the Orthanc IDs of its series (of the one study in selector_value) and,
    # when not every instance of them, of its instances.
    series_ids: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    instance_ids: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # The syntax to convert to (a rule's target); None: DICOMGATE_TARGET_SYNTAX.
    target_syntax: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime(), server_default=func.now())
    started_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    finished_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    updated_at: Mapped[datetime.datetime] = mapped_column(
        UtcDateTime(), server_default=func.now(), onupdate=func.now()
    )


class ConversionOutcome(Base):
    """What happened to one instance in one job (keyed by its Orthanc instance ID)."""

    __tablename__ = "conversion_outcomes"
    __table_args__ = (UniqueConstraint("job_id", "orthanc_id", name="uq_conversion_outcomes_job"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(
        ForeignKey("conversion_jobs.id", ondelete="CASCADE"), index=True
    )
    orthanc_id: Mapped[str] = mapped_column(String(64))
    study_instance_uid: Mapped[str] = mapped_column(String(64), default="")
    sop_instance_uid: Mapped[str] = mapped_column(String(64), default="")
    outcome: Mapped[str] = mapped_column(String(16))  # converted | skipped | failed | planned
    reason: Mapped[str | None] = mapped_column(String(512), nullable=True)
    bytes_before: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_after: Mapped[int] = mapped_column(BigInteger, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime(), server_default=func.now())


# A large object's OID on PostgreSQL (unsigned 32-bit); the table exists on SQLite too, unused.
LargeObjectId = BigInteger().with_variant(OID(), "postgresql")


class ReplaceJournalRow(Base):
    """PostgreSQL's journal of originals (see :mod:`.journals`): one instance being replaced.

    The original's bytes are a large object, created in the same transaction as the row and
    unlinked in the same transaction as its delete: a row exists exactly when its original does.
    """

    __tablename__ = "replace_journal"

    orthanc_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(String(128), default="", index=True)
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    entry: Mapped[dict[str, Any]] = mapped_column(JSON)  # JournalEntry, as asdict() gives it
    original_oid: Mapped[int] = mapped_column(LargeObjectId)
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime(), server_default=func.now())


class ConversionJobStudy(Base):
    """One study of a job distributed over workers (PostgreSQL, see :mod:`.queue`): the job is
    over when every one of its studies is; ``state``: queued | done | cancelled."""

    __tablename__ = "conversion_job_studies"

    job_id: Mapped[int] = mapped_column(
        ForeignKey("conversion_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    study_instance_uid: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    instances_total: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime.datetime] = mapped_column(
        UtcDateTime(), server_default=func.now(), onupdate=func.now()
    )
