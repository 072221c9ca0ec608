"""Helpers for the patient tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dicomgate.settings import Settings


def settings_for(database_url: str) -> Settings:
    """Settings for an app that only needs its database (Orthanc is never called)."""
    return Settings(database_url=database_url, orthanc_url="http://127.0.0.1:9", workers=1)


PutPatient = Callable[..., Any]
