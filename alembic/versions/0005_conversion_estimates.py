"""Conversions: dry-run estimates, retried failures and attempts per instance (issue 5).

Revision ID: 0005_conversion_estimates
Revises: 0004_audit_events

Plain ADD/DROP COLUMN, not batch mode: a batch rebuild of ``conversion_jobs`` on SQLite drops
the table, and with foreign keys on that cascades to every ``conversion_outcomes`` row.
SQLite ≥ 3.35 and PostgreSQL both drop a column in place.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_conversion_estimates"
down_revision: str | None = "0004_audit_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "conversion_jobs",
        sa.Column("retried", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column("conversion_jobs", sa.Column("sample_size", sa.Integer(), nullable=True))
    op.add_column("conversion_jobs", sa.Column("estimate", sa.JSON(), nullable=True))
    op.add_column(
        "conversion_outcomes",
        sa.Column("attempts", sa.Integer(), server_default="1", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("conversion_outcomes", "attempts")
    op.drop_column("conversion_jobs", "estimate")
    op.drop_column("conversion_jobs", "sample_size")
    op.drop_column("conversion_jobs", "retried")
