"""Source pixels as the transcoder reads them: frame by frame, checked, fingerprinted.

"Pixel-identical" means: the stored pixel values, as pydicom decodes them (``raw=True``: no
colour-space conversion, palette indices kept, signed values sign-extended from Bits Stored), are
equal in the source and in the output, frame by frame. Bits above the high bit are not pixel data
(PS3.5 §8.1.1); if a source carries anything there other than zeros or a sign extension, it could
be an embedded overlay, so the instance is passed through unchanged (``unused_bits_set``).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels.utils import iter_pixels
from pydicom.uid import ExplicitVRBigEndian

from dicomgate.codec.decoding import quiet_plugin_failures
from dicomgate.codec.profiles import NATIVE_SYNTAXES
from dicomgate.codec.reasons import PassThrough, PassThroughReason
from dicomgate.dicom.image import ImageGeometry

UNUSED_BITS_SLICE = 1 << 20  # samples checked at once for bits above the high bit


def canonical_dtype(allocated: int, signed: bool) -> np.dtype[Any]:
    """The little-endian integer type one sample of ``allocated`` bits is compared in."""
    return np.dtype(f"<{'i' if signed else 'u'}{max(1, allocated // 8)}")


def source_frames(ds: Dataset, geometry: ImageGeometry) -> Iterator[np.ndarray]:
    """Each frame as pydicom decodes it (raw: no colour conversion), interleaved samples."""
    dtype = canonical_dtype(geometry.bits_allocated, geometry.signed)
    frames = iter_pixels(ds, raw=True)
    while True:
        # A plugin that fails is not news here: the caller passes the instance through and
        # says why (quiet only while pydicom decodes, not while the caller holds the frame).
        with quiet_plugin_failures():
            frame = next(frames, None)
        if frame is None:
            return
        yield np.ascontiguousarray(frame, dtype=dtype)


def check_unused_bits(ds: Dataset, source: str, geometry: ImageGeometry) -> None:
    """Refuse to drop information kept above the high bit (PS3.5 §8.1.1; retired overlays)."""
    stored, allocated, signed = geometry.bits_stored, geometry.bits_allocated, geometry.signed
    if stored == allocated:
        return
    if source in NATIVE_SYNTAXES:
        dtype = np.dtype(f"{'>' if source == ExplicitVRBigEndian else '<'}u{allocated // 8}")
        raw = np.frombuffer(ds.PixelData, dtype=dtype, count=len(ds.PixelData) // dtype.itemsize)
        full = (1 << (allocated - stored)) - 1
        # In slices: the temporaries below are several times the slice, never the whole image.
        for start in range(0, raw.size, UNUSED_BITS_SLICE):
            part = raw[start : start + UNUSED_BITS_SLICE]
            high = part >> stored
            if signed:
                sign = (part >> (stored - 1)) & 1
                # Per pixel: all-zero high bits, or a correct sign extension of a negative value.
                bad = bool(np.any((high != 0) & ~((high == full) & (sign == 1))))
            else:
                bad = bool(np.any(high))
            if bad:
                raise PassThrough(
                    PassThroughReason.UNUSED_BITS_SET, "bits above the high bit are set"
                )


def check_range(frame: np.ndarray, stored: int, signed: bool) -> None:
    """Decoded values must fit Bits Stored, or the J2K precision cannot hold them."""
    if signed:
        lo, hi = -(1 << (stored - 1)), (1 << (stored - 1)) - 1
    else:
        lo, hi = 0, (1 << stored) - 1
    if frame.size and (int(frame.min()) < lo or int(frame.max()) > hi):
        raise PassThrough(PassThroughReason.UNUSED_BITS_SET, "decoded values exceed Bits Stored")


def crc32_of(frame: np.ndarray) -> int:
    """CRC32 of one decoded frame in canonical little-endian layout."""
    little = frame.dtype.newbyteorder("<")
    if frame.dtype != little:  # only big-endian sources need a byte-swapped copy
        frame = frame.astype(little)
    return zlib.crc32(np.ascontiguousarray(frame).data)
