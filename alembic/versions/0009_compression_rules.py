"""Compression rules (issue 16 item 3): the /changes cursor, the backlog of stable series, the
paused rules; conversion jobs gain an origin, a series selection and a target.

Revision ID: 0009_compression_rules
Revises: 0007_identity_audit

Numbered 0009 to leave room for the distributed conversions' migrations (issue 16 items 1-2):
whichever lands last takes the other as its ``down_revision``. Plain ADD/DROP COLUMN on
``conversion_jobs`` (see 0005: a batch rebuild would cascade into its outcomes on SQLite).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_compression_rules"
down_revision: str | None = "0007_identity_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("conversion_jobs", sa.Column("origin", sa.String(length=80), nullable=True))
    op.add_column("conversion_jobs", sa.Column("series_ids", sa.JSON(), nullable=True))
    op.add_column("conversion_jobs", sa.Column("instance_ids", sa.JSON(), nullable=True))
    op.add_column(
        "conversion_jobs", sa.Column("target_syntax", sa.String(length=16), nullable=True)
    )
    op.create_index(op.f("ix_conversion_jobs_origin"), "conversion_jobs", ["origin"])
    cursor = op.create_table(
        "rules_cursor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=True),
        sa.Column("orthanc_last_seq", sa.BigInteger(), nullable=True),
        sa.Column("followed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rules_digest", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rules_cursor")),
    )
    # The one row every follower locks (there is nothing to lock before it exists).
    op.bulk_insert(cursor, [{"id": 1, "last_seq": None}])
    op.create_table(
        "rule_series",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("series_id", sa.String(length=64), nullable=False),
        sa.Column("study_id", sa.String(length=64), server_default="", nullable=False),
        sa.Column("study_instance_uid", sa.String(length=128), server_default="", nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("stable_seq", sa.BigInteger(), nullable=False),
        sa.Column("stable_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["conversion_jobs.id"],
            name=op.f("fk_rule_series_job_id_conversion_jobs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_series")),
        sa.UniqueConstraint("series_id", name=op.f("uq_rule_series_series_id")),
    )
    op.create_index(op.f("ix_rule_series_state"), "rule_series", ["state"])
    op.create_index(op.f("ix_rule_series_due_at"), "rule_series", ["due_at"])
    op.create_table(
        "rule_pauses",
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("paused_by", sa.String(length=256), nullable=False),
        sa.Column(
            "paused_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("rule", name=op.f("pk_rule_pauses")),
    )


def downgrade() -> None:
    op.drop_table("rule_pauses")
    op.drop_index(op.f("ix_rule_series_due_at"), table_name="rule_series")
    op.drop_index(op.f("ix_rule_series_state"), table_name="rule_series")
    op.drop_table("rule_series")
    op.drop_table("rules_cursor")
    op.drop_index(op.f("ix_conversion_jobs_origin"), table_name="conversion_jobs")
    op.drop_column("conversion_jobs", "target_syntax")
    op.drop_column("conversion_jobs", "instance_ids")
    op.drop_column("conversion_jobs", "series_ids")
    op.drop_column("conversion_jobs", "origin")
