"""The one clock: timezone-aware UTC (job timestamps, ingest's Original Attributes)."""

from __future__ import annotations

import datetime


def utcnow() -> datetime.datetime:
    """Now, timezone-aware UTC."""
    return datetime.datetime.now(datetime.UTC)
