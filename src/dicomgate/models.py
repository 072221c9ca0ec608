"""Import every ORM model so that ``Base.metadata`` is complete (for Alembic and tests)."""

from __future__ import annotations

import importlib

MODEL_MODULES: list[str] = [
    "dicomgate.patients.models",
    "dicomgate.conversions.models",
    "dicomgate.auth.models",
    "dicomgate.audit.models",
    "dicomgate.identity.models",
    "dicomgate.statistics.models",
    "dicomgate.rules.models",
]


def load_models() -> None:
    for name in MODEL_MODULES:
        importlib.import_module(name)
