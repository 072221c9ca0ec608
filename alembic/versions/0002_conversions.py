"""Conversion jobs and per-instance outcomes (issue 5).

Revision ID: 0002_conversions
Revises: 0001_patients
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_conversions"
down_revision: str | None = "0001_patients"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "conversion_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("selector", sa.String(length=16), nullable=False),
        sa.Column("selector_value", sa.String(length=128), nullable=True),
        sa.Column("shard", sa.String(length=32), nullable=True),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("instances_total", sa.Integer(), nullable=False),
        sa.Column("converted", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("skipped_by_reason", sa.JSON(), nullable=False),
        sa.Column("bytes_before", sa.BigInteger(), nullable=False),
        sa.Column("bytes_after", sa.BigInteger(), nullable=False),
        sa.Column("elapsed", sa.Float(), nullable=False),
        sa.Column("current_study", sa.String(length=128), nullable=True),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversion_jobs")),
    )
    op.create_index(op.f("ix_conversion_jobs_state"), "conversion_jobs", ["state"])
    op.create_table(
        "conversion_outcomes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("orthanc_id", sa.String(length=64), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=512), nullable=True),
        sa.Column("bytes_before", sa.BigInteger(), nullable=False),
        sa.Column("bytes_after", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["conversion_jobs.id"],
            ondelete="CASCADE",
            name=op.f("fk_conversion_outcomes_job_id_conversion_jobs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversion_outcomes")),
        sa.UniqueConstraint("job_id", "orthanc_id", name="uq_conversion_outcomes_job"),
    )
    op.create_index(op.f("ix_conversion_outcomes_job_id"), "conversion_outcomes", ["job_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_conversion_outcomes_job_id"), table_name="conversion_outcomes")
    op.drop_table("conversion_outcomes")
    op.drop_index(op.f("ix_conversion_jobs_state"), table_name="conversion_jobs")
    op.drop_table("conversion_jobs")
