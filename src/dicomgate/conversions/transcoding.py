"""What a conversion runs in the worker pool: the transcode, and the digests the replacement's
journal entry needs, computed where the bytes already are (no copy back to the event loop's
threads to hash them; one import, light enough for every pool process)."""

from __future__ import annotations

from dataclasses import dataclass

from dicomgate.codec.transcode import TranscodeOptions, TranscodeResult, transcode
from dicomgate.kit.hashing import sha256


@dataclass(frozen=True)
class Transcoded:
    """A transcode's result with the SHA-256 of its input and (if converted) of its output."""

    result: TranscodeResult
    original_sha256: str
    converted_sha256: str | None


def transcode_hashed(original: bytes, options: TranscodeOptions) -> Transcoded:
    """:func:`.transcode` in a pool worker, with both files' SHA-256."""
    result = transcode(original, options)
    return Transcoded(
        result=result,
        original_sha256=sha256(original),
        converted_sha256=sha256(result.data) if result.converted else None,
    )
