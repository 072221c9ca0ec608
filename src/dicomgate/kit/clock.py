"""The one clock: timezone-aware UTC (job timestamps, ingest's Original Attributes)."""

from __future__ import annotations

import datetime


def utcnow() -> datetime.datetime:
    """Now, timezone-aware UTC."""
    return datetime.datetime.now(datetime.UTC)


def aware(value: datetime.datetime) -> datetime.datetime:
    """A timestamp read back from the database as aware UTC (SQLite returns it naive)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=datetime.UTC)
