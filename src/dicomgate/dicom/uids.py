"""UIDs: what a UID looks like, and UIDs that are pure functions of their inputs.

PS3.5 §9.1: a UID is digit components separated by dots, at most 64 characters. dicomgate
tolerates leading zeros in a component (not conformant, but real scanners write them and the
value is still the image's identity); anything else is not a UID.

PS3.5 §B.2 allows UUID-derived UIDs (``2.25.`` + a UUIDv5 as an integer): at most 39 digits
after ``2.25.``, so at most 44 characters (a UI holds 64). Derived rather than random wherever a
retry must produce the very same identity, so that Orthanc, which derives its IDs from the UIDs,
stores the retry as ``AlreadyStored`` instead of a duplicate.
"""

from __future__ import annotations

import json
import re
import uuid

UID_MAX_LENGTH = 64
UID_PATTERN = re.compile(r"[0-9]+(?:\.[0-9]+)*")


def is_uid(value: str) -> bool:
    """True when ``value`` is a UID as PS3.5 §9.1 writes it (leading zeros tolerated)."""
    return len(value) <= UID_MAX_LENGTH and UID_PATTERN.fullmatch(value) is not None


def derived_uid(namespace: uuid.UUID, *parts: str) -> str:
    """The UID named by ``parts`` in ``namespace`` (never change a namespace once used:
    every UID derived in it would change). The parts are JSON-encoded as a list, so no two
    different tuples share a name."""
    name = json.dumps(list(parts), ensure_ascii=False)
    return f"2.25.{uuid.uuid5(namespace, name).int}"
