"""The journal of originals in the database (issue 16 item 2): used on PostgreSQL, where every
worker must reach it; the originals are large objects.

Revision ID: 0010_replace_journal
Revises: 0009_compression_rules
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010_replace_journal"
down_revision: str | None = "0009_compression_rules"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "replace_journal",
        sa.Column("orthanc_id", sa.String(length=64), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=128), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("entry", sa.JSON(), nullable=False),
        sa.Column(
            "original_oid",
            sa.BigInteger().with_variant(postgresql.OID(), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("orthanc_id", name=op.f("pk_replace_journal")),
    )
    op.create_index(
        op.f("ix_replace_journal_study_instance_uid"), "replace_journal", ["study_instance_uid"]
    )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        pending = bind.execute(sa.text("SELECT count(*) FROM replace_journal")).scalar_one()
        if pending:
            # Each row is the only copy of an original Orthanc may not serve: never drop it.
            raise RuntimeError(
                f"replace_journal holds {pending} unfinished replacement(s): run a conversion "
                "(which settles them) before downgrading"
            )
    op.drop_index(op.f("ix_replace_journal_study_instance_uid"), table_name="replace_journal")
    op.drop_table("replace_journal")
