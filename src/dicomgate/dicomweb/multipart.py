"""multipart/related bodies (RFC 2387, PS3.18 §8.6.1.2), written as a stream of parts.

Each part carries its own Content-Type (with the transfer syntax of its payload: Cornerstone3D
reads it from the part's ``Content-Type:`` line) and, when known, its Content-Length.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

CRLF = b"\r\n"


@dataclass
class Part:
    """One part: its Content-Type and its bytes, whole or as chunks (streamed)."""

    content_type: str
    body: bytes | AsyncIterator[bytes]
    length: int | None = None


def new_boundary() -> str:
    """A boundary no payload can contain by chance (128 random bits)."""
    return f"dicomgate-{uuid.uuid4().hex}"


def related_content_type(part_type: str, boundary: str) -> str:
    """The response's Content-Type: ``multipart/related; type="…"; boundary=…``."""
    return f'multipart/related; type="{part_type}"; boundary={boundary}'


def _head(boundary: str, part: Part) -> bytes:
    lines = [f"--{boundary}", f"Content-Type: {part.content_type}"]
    length = len(part.body) if isinstance(part.body, bytes) else part.length
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def write_parts(parts: AsyncIterator[Part], boundary: str) -> AsyncIterator[bytes]:
    """The body, part after part (only one part's chunks in flight at a time)."""
    async for part in parts:
        yield _head(boundary, part)
        if isinstance(part.body, bytes):
            yield part.body
        else:
            async for chunk in part.body:
                yield chunk
        yield CRLF
    yield f"--{boundary}--\r\n".encode("latin-1")


def whole_body(parts: list[Part], boundary: str) -> bytes:
    """The body of parts already in memory, at once (a small answer: no stream to run)."""
    out = []
    for part in parts:
        assert isinstance(part.body, bytes)
        out += [_head(boundary, part), part.body, CRLF]
    out.append(f"--{boundary}--\r\n".encode("latin-1"))
    return b"".join(out)
