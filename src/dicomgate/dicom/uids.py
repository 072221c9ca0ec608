"""UIDs that are pure functions of their inputs (``2.25.`` + a UUIDv5 as an integer).

PS3.5 §B.2 allows UUID-derived UIDs: at most 39 digits after ``2.25.``, so at most 44
characters (a UI holds 64). Derived rather than random wherever a retry must produce the very
same identity, so that Orthanc, which derives its IDs from the UIDs, stores the retry as
``AlreadyStored`` instead of a duplicate.
"""

from __future__ import annotations

import json
import uuid


def derived_uid(namespace: uuid.UUID, *parts: str) -> str:
    """The UID named by ``parts`` in ``namespace`` (never change a namespace once used:
    every UID derived in it would change). The parts are JSON-encoded as a list, so no two
    different tuples share a name."""
    name = json.dumps(list(parts), ensure_ascii=False)
    return f"2.25.{uuid.uuid5(namespace, name).int}"
