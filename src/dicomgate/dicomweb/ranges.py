"""HTTP byte ranges on single-part bodies (RFC 9110 §14): what a progressive HTJ2K viewer asks
for to draw a low-resolution image from a prefix of an RPCL codestream first."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dicomgate.errors import RangeNotSatisfiable

_SINGLE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class ByteRange:
    """Bytes ``start`` to ``end`` inclusive of a body of ``size`` bytes."""

    start: int
    end: int
    size: int

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.size}"

    def slice(self, body: bytes) -> bytes:
        return body[self.start : self.end + 1]


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range to send, or ``None`` for the whole body.

    ``bytes=first-last`` (``last`` past the end is clamped), ``bytes=first-`` (open) and
    ``bytes=-suffix`` (the last bytes). A header that is not one well-formed byte range (other
    units, several ranges) is ignored, as RFC 9110 §14.2 allows: the whole body is sent.
    Raises ``RangeNotSatisfiable`` (416) when the range starts past the end or asks for an
    empty suffix.
    """
    if header is None:
        return None
    match = _SINGLE.match(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix range
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(
                f"The range {header.strip()} selects no byte of the {size}-byte body", size=size
            )
        return ByteRange(max(0, size - suffix), size - 1, size)
    start = int(first)
    if last and int(last) < start:
        return None  # invalid: ignored (RFC 9110 §14.1.1)
    end = int(last) if last else size - 1
    if start >= size:
        raise RangeNotSatisfiable(
            f"The range {header.strip()} starts past the end of the {size}-byte body", size=size
        )
    return ByteRange(start, min(end, size - 1), size)
