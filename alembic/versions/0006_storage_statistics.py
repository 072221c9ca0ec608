"""stored_instances: what dicomgate wrote to Orthanc, for GET /api/ris/statistics/

Revision ID: 0006_storage_statistics
Revises: 0005_conversion_estimates
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_storage_statistics"
down_revision: str | None = "0005_conversion_estimates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stored_instances",
        sa.Column("orthanc_id", sa.String(length=64), nullable=False),
        sa.Column("patient_orthanc_id", sa.String(length=64), nullable=False),
        sa.Column("study_orthanc_id", sa.String(length=64), nullable=False),
        sa.Column("series_orthanc_id", sa.String(length=64), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=True),
        sa.Column("transfer_syntax", sa.String(length=64), nullable=False),
        sa.Column("original_size", sa.BigInteger(), nullable=False),
        sa.Column("stored_size", sa.BigInteger(), nullable=False),
        sa.Column("ingest_saved", sa.BigInteger(), nullable=True),
        sa.Column("conversion_saved", sa.BigInteger(), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("orthanc_id", name=op.f("pk_stored_instances")),
    )
    op.create_index("ix_stored_instances_patient", "stored_instances", ["patient_orthanc_id"])
    op.create_index("ix_stored_instances_study", "stored_instances", ["study_orthanc_id"])
    op.create_index("ix_stored_instances_series", "stored_instances", ["series_orthanc_id"])


def downgrade() -> None:
    op.drop_index("ix_stored_instances_series", table_name="stored_instances")
    op.drop_index("ix_stored_instances_study", table_name="stored_instances")
    op.drop_index("ix_stored_instances_patient", table_name="stored_instances")
    op.drop_table("stored_instances")
