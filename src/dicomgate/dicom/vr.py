"""Values made fit for a Value Representation before dicomgate writes them (PS3.5 §6.2)."""

from __future__ import annotations

import re

LO_MAX_CHARS = 64  # PS3.5 Table 6.2-1: LO, 64 characters maximum
# Control characters: C0 (ESC included), DEL and C1. PS3.5 §6.1.3 admits ESC in LO only to
# start an ISO 2022 escape sequence, which pydicom writes itself from Specific Character Set;
# one arriving in a client's text would break the encoding (and a terminal showing the value).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def long_string(text: str) -> str:
    """``text`` as a Long String (LO, PS3.5 Table 6.2-1): control characters and the backslash
    (the value delimiter) dropped, outer spaces trimmed, at most 64 characters."""
    cleaned = _CONTROL.sub("", text).replace("\\", "")
    return cleaned.strip()[:LO_MAX_CHARS].strip()
