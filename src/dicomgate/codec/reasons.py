"""Why a valid instance is stored unchanged: one list of reasons, each with a person's text.

The codec raises these (:class:`PassThrough`); ingest answers with the text ("Uploaded
unchanged: …"), conversions count and print them ("Skipped: 2 already HTJ2K"). A reason added
here without a text fails the table test in ``tests/dicom``.
"""

from __future__ import annotations

from enum import StrEnum


class PassThroughReason(StrEnum):
    """A pass-through reason code (stored in job counters and API answers as its value)."""

    ALREADY_HTJ2K = "already_htj2k"
    NO_PIXEL_DATA = "no_pixel_data"
    FLOAT_PIXELS = "float_pixels"
    LOSSY_SOURCE = "lossy_source"
    UNSUPPORTED_TRANSFER_SYNTAX = "unsupported_transfer_syntax"
    BITS_ALLOCATED_1 = "bits_allocated_1"
    SUBSAMPLED_YBR = "subsampled_ybr"
    UNUSED_BITS_SET = "unused_bits_set"
    CODEC_REFUSED = "codec_refused"
    VERIFICATION_FAILED = "verification_failed"

    @property
    def text(self) -> str:
        """A person's phrase for the reason (reads after "Uploaded unchanged:" or a count)."""
        return REASON_TEXTS[self]


REASON_TEXTS: dict[PassThroughReason, str] = {
    PassThroughReason.ALREADY_HTJ2K: "already HTJ2K",
    PassThroughReason.NO_PIXEL_DATA: "no pixel data to transcode",
    PassThroughReason.FLOAT_PIXELS: "floating-point pixels (not transcoded)",
    PassThroughReason.LOSSY_SOURCE: "lossy source (re-encoding would not be lossless)",
    PassThroughReason.UNSUPPORTED_TRANSFER_SYNTAX: "a transfer syntax that cannot be decoded here",
    PassThroughReason.BITS_ALLOCATED_1: "1-bit pixels (not transcoded)",
    PassThroughReason.SUBSAMPLED_YBR: "chroma-subsampled colour (kept as it is)",
    PassThroughReason.UNUSED_BITS_SET: (
        "bits set above Bits Stored (kept: they may hold an overlay)"
    ),
    PassThroughReason.CODEC_REFUSED: "the encoder refused it",
    PassThroughReason.VERIFICATION_FAILED: "lossless verification failed (original kept)",
}


def reason_text(reason: str | None) -> str:
    """The text of a reason code; an unknown code (an older job's) is shown as it is."""
    if reason is None:
        return "unknown"
    try:
        return PassThroughReason(reason).text
    except ValueError:
        return reason


class PassThrough(Exception):
    """The instance is valid but stays as it is, for ``reason`` (``detail`` says more)."""

    def __init__(self, reason: PassThroughReason, detail: str = "") -> None:
        super().__init__(detail or reason.value)
        self.reason = reason
        self.detail = detail
