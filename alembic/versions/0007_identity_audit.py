"""Identity claims (one SOP Instance UID, one patient) and indexed audit subjects (issue 11).

Revision ID: 0007_identity_audit
Revises: 0006_storage_statistics

``instance_claims``: one row per SOP Instance UID dicomgate stores, taken before the instance
is sent to Orthanc; its primary key is what makes two concurrent uploads of one instance to two
patients impossible, on one process or on many replicas sharing the database.

``audit_event_subjects``: the patient IDs and Study Instance UIDs each audit event touched, one
row per value, indexed, so the audit trail is filtered by patient or study with an index.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_identity_audit"
down_revision: str | None = "0006_storage_statistics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "instance_claims",
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("series_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=130), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("orthanc_id", sa.String(length=64), nullable=True),
        sa.Column("file_uuid", sa.String(length=64), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("sop_instance_uid", name=op.f("pk_instance_claims")),
    )
    op.create_table(
        "audit_event_subjects",
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["audit_events.id"],
            name=op.f("fk_audit_event_subjects_event_id_audit_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", "kind", "value", name=op.f("pk_audit_event_subjects")),
    )
    op.create_index(
        "ix_audit_event_subjects_kind_value",
        "audit_event_subjects",
        ["kind", "value", "event_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_audit_event_subjects_kind_value", table_name="audit_event_subjects")
    op.drop_table("audit_event_subjects")
    op.drop_table("instance_claims")
