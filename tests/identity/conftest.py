"""Identity tests run on the ingest fixtures: the real app (SQLite, or PostgreSQL when marked
``BOTH_DATABASES``), the real Orthanc seen through its own API, patients in the real cache."""

from __future__ import annotations

from tests.ingest.conftest import (  # noqa: F401 (fixtures)
    client,
    db_kind,
    ingest_app,
    make_patient,
    postgres_app,
    stored,
)
