"""Conversion jobs spread over workers (issue 16 item 1): the studies of a distributed job, and,
on PostgreSQL, Procrastinate's task queue (its own schema, as the installed version ships it).

Unfinished jobs of the removed ``--shard K/N`` are cancelled: workers now share the studies of
one job; start it again without a shard.

Revision ID: 0011_conversion_queue
Revises: 0010_replace_journal
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.util import await_only

revision: str = "0011_conversion_queue"
down_revision: str | None = "0010_replace_journal"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _execute_script(sql: str) -> None:
    """Run a multi-statement script (functions with $$ bodies) on the driver itself: asyncpg's
    simple query protocol, inside the migration's transaction."""
    driver = op.get_bind().connection.dbapi_connection.driver_connection  # type: ignore[union-attr]
    await_only(driver.execute(sql))


def upgrade() -> None:
    op.create_table(
        "conversion_job_studies",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("instances_total", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["conversion_jobs.id"],
            name=op.f("fk_conversion_job_studies_job_id_conversion_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "job_id", "study_instance_uid", name=op.f("pk_conversion_job_studies")
        ),
    )
    op.execute(
        "UPDATE conversion_jobs SET state = 'cancelled' "
        "WHERE shard IS NOT NULL AND state IN ('pending', 'running', 'interrupted')"
    )
    if op.get_bind().dialect.name == "postgresql":
        from procrastinate.schema import SchemaManager

        _execute_script(SchemaManager.get_schema())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _execute_script(
            """
            DO $$
            DECLARE f record;
            BEGIN
              FOR f IN SELECT oid::regprocedure AS sig FROM pg_proc
                       WHERE proname LIKE 'procrastinate\\_%' LOOP
                EXECUTE 'DROP FUNCTION IF EXISTS ' || f.sig || ' CASCADE';
              END LOOP;
            END $$;
            DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers,
                procrastinate_jobs, procrastinate_workers CASCADE;
            DROP TYPE IF EXISTS procrastinate_job_to_defer_v1, procrastinate_job_event_type,
                procrastinate_job_status CASCADE;
            """
        )
    op.drop_table("conversion_job_studies")
