"""Which sources dicomgate transcodes: one table of transfer syntaxes, one set of pixel rules.

The shape follows pydicom's ``pixels/encoders/base.py`` (``ENCODING_PROFILES``): transfer syntaxes
by name from ``pydicom.uid``, each row saying where the standard defines it. A syntax missing
from the table is one dicomgate cannot decode: its instances pass through unchanged.

:func:`pass_through_reason` is pure, on the few attributes the rules read: the transcoder applies
it to a parsed dataset and the conversion dry run to the tags Orthanc lists (nothing downloaded),
so both decide the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    JPEG2000MC,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from dicomgate.codec.reasons import PassThroughReason

# PS3.6 Table A-1 (Supplement 232); pydicom 3.0 has no names for JPEG XL yet.
JPEGXLJPEGRecompression = UID("1.2.840.10008.1.2.4.111")
JPEGXL = UID("1.2.840.10008.1.2.4.112")


class SourceKind(Enum):
    """What a transfer syntax's Pixel Data is, for the transcoder."""

    NATIVE = "native"  # uncompressed: transcoded
    LOSSLESS = "lossless"  # lossless compression pydicom decodes: transcoded
    LOSSY = "lossy"  # (possibly) lossy: re-encoding would not be lossless, kept
    HTJ2K = "htj2k"  # already the target family, kept


@dataclass(frozen=True)
class SourceProfile:
    """One transfer syntax dicomgate recognises, and where the standard defines it."""

    syntax: UID
    kind: SourceKind
    cited: str


SOURCE_PROFILES: dict[str, SourceProfile] = {
    row.syntax: row
    for row in (
        SourceProfile(ImplicitVRLittleEndian, SourceKind.NATIVE, "PS3.5 §A.1"),
        SourceProfile(ExplicitVRLittleEndian, SourceKind.NATIVE, "PS3.5 §A.2"),
        SourceProfile(DeflatedExplicitVRLittleEndian, SourceKind.NATIVE, "PS3.5 §A.5"),
        SourceProfile(ExplicitVRBigEndian, SourceKind.NATIVE, "PS3.5 §A.3 (retired)"),
        SourceProfile(RLELossless, SourceKind.LOSSLESS, "PS3.5 §8.2.2"),
        SourceProfile(JPEGLossless, SourceKind.LOSSLESS, "PS3.5 §8.2.1, Process 14"),
        SourceProfile(JPEGLosslessSV1, SourceKind.LOSSLESS, "PS3.5 §8.2.1, Process 14 SV1"),
        SourceProfile(JPEGLSLossless, SourceKind.LOSSLESS, "PS3.5 §8.2.3"),
        SourceProfile(JPEG2000Lossless, SourceKind.LOSSLESS, "PS3.5 §8.2.4"),
        SourceProfile(JPEGBaseline8Bit, SourceKind.LOSSY, "PS3.5 §8.2.1, Process 1"),
        SourceProfile(JPEGExtended12Bit, SourceKind.LOSSY, "PS3.5 §8.2.1, Processes 2 & 4"),
        SourceProfile(JPEGLSNearLossless, SourceKind.LOSSY, "PS3.5 §8.2.3 (near-lossless)"),
        # Lossy or lossless: the two cannot be told apart from the transfer syntax.
        SourceProfile(JPEG2000, SourceKind.LOSSY, "PS3.5 §8.2.4"),
        SourceProfile(JPEG2000MC, SourceKind.LOSSY, "PS3.5 §8.2.4, Part 2 multi-component"),
        SourceProfile(JPEGXLJPEGRecompression, SourceKind.LOSSY, "PS3.6 Table A-1, JPEG XL"),
        SourceProfile(JPEGXL, SourceKind.LOSSY, "PS3.6 Table A-1, JPEG XL"),
        SourceProfile(HTJ2KLossless, SourceKind.HTJ2K, "PS3.5 §10.18, §A.4.4"),
        SourceProfile(HTJ2KLosslessRPCL, SourceKind.HTJ2K, "PS3.5 §10.18, §A.4.4"),
        SourceProfile(HTJ2K, SourceKind.HTJ2K, "PS3.5 §10.18, §A.4.4"),
    )
}
HTJ2K_SYNTAXES = frozenset(s for s, p in SOURCE_PROFILES.items() if p.kind is SourceKind.HTJ2K)
NATIVE_SYNTAXES = frozenset(s for s, p in SOURCE_PROFILES.items() if p.kind is SourceKind.NATIVE)

# PS3.3 §C.7.6.3.1.2: chroma-subsampled; the J2K encoders here take whole samples only.
SUBSAMPLED_PHOTOMETRIC = frozenset({"YBR_FULL_422", "YBR_PARTIAL_422", "YBR_PARTIAL_420"})
SUPPORTED_PHOTOMETRIC = frozenset(
    {"MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "YBR_FULL", "YBR_RCT"}
)


def source_kind(syntax: str) -> SourceKind | None:
    """The table's kind for a transfer syntax; None when dicomgate cannot decode it."""
    profile = SOURCE_PROFILES.get(syntax)
    return profile.kind if profile is not None else None


@dataclass(frozen=True)
class Ineligible:
    """Why an instance stays as it is (SPEC: Transcoding rules), and what exactly."""

    reason: PassThroughReason
    detail: str = ""


def pass_through_reason(
    syntax: str,
    *,
    pixel_data: bool,
    float_pixel_data: bool,
    bits_allocated: int | None,
    photometric: str,
    samples_per_pixel: int,
) -> Ineligible | None:
    """Why an instance stays as it is, or None when it is a candidate for the encoder.

    An unknown ``bits_allocated`` (None) is refused like any unsupported value.
    """
    kind = source_kind(syntax)
    if float_pixel_data:
        return Ineligible(PassThroughReason.FLOAT_PIXELS)
    if not pixel_data:
        return Ineligible(PassThroughReason.NO_PIXEL_DATA)
    if kind is SourceKind.HTJ2K:
        return Ineligible(PassThroughReason.ALREADY_HTJ2K)
    if kind is SourceKind.LOSSY:
        return Ineligible(PassThroughReason.LOSSY_SOURCE)
    if kind is None:
        return Ineligible(
            PassThroughReason.UNSUPPORTED_TRANSFER_SYNTAX, f"transfer syntax {syntax}"
        )
    if bits_allocated == 1:
        return Ineligible(PassThroughReason.BITS_ALLOCATED_1)
    if photometric in SUBSAMPLED_PHOTOMETRIC:
        return Ineligible(PassThroughReason.SUBSAMPLED_YBR)
    if photometric not in SUPPORTED_PHOTOMETRIC:
        return Ineligible(
            PassThroughReason.CODEC_REFUSED, f"photometric interpretation {photometric!r}"
        )
    if bits_allocated not in (8, 16):
        return Ineligible(PassThroughReason.CODEC_REFUSED, f"Bits Allocated {bits_allocated}")
    if samples_per_pixel not in (1, 3):
        return Ineligible(PassThroughReason.CODEC_REFUSED, f"{samples_per_pixel} samples per pixel")
    return None
