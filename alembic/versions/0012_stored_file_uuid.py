"""stored_instances.file_uuid: the Orthanc attachment whose transfer syntax the row records
(issue 13), so DICOMweb reads the syntax of files dicomgate stored without reading each header.

Revision ID: 0012_stored_file_uuid
Revises: 0011_conversion_queue
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_stored_file_uuid"
down_revision: str | None = "0011_conversion_queue"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stored_instances") as batch:
        batch.add_column(sa.Column("file_uuid", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stored_instances") as batch:
        batch.drop_column("file_uuid")
