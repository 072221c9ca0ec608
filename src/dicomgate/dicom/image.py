"""What the Image Pixel module says about the pixels (PS3.3 §C.7.6.3), read and checked once.

The header alone decides whether an image is refused as a pixel bomb (nothing decoded or
allocated) and whether native Pixel Data is whole: ingest, the codec, the preview and the
conversion dry run all ask here.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.pixels.utils import get_expected_length

from dicomgate.errors import ImageTooLarge, InvalidDicom


def _int(ds: Dataset, keyword: str, default: int | None = None) -> int:
    value = ds.get(keyword, default)
    if value is None or value == "":
        if default is None:
            raise InvalidDicom(f"The image has no {keyword}")
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidDicom(f"The image has an invalid {keyword}: {value!r}") from None


@dataclass(frozen=True)
class ImageGeometry:
    """Rows, Columns, Samples per Pixel, Frames and the bit layout of one image."""

    rows: int
    columns: int
    samples: int
    frames: int
    bits_allocated: int
    bits_stored: int
    signed: bool

    @classmethod
    def of(cls, ds: Dataset) -> ImageGeometry:
        """Read and validate the geometry (InvalidDicom when it is missing or impossible)."""
        rows = _int(ds, "Rows")
        cols = _int(ds, "Columns")
        samples = _int(ds, "SamplesPerPixel", 1)
        frames = _int(ds, "NumberOfFrames", 1) or 1
        allocated = _int(ds, "BitsAllocated")
        stored = _int(ds, "BitsStored", allocated)
        signed = _int(ds, "PixelRepresentation", 0)
        if rows <= 0 or cols <= 0 or samples <= 0 or frames <= 0 or allocated <= 0:
            raise InvalidDicom(
                f"The image has invalid dimensions: {rows}×{cols}, {samples} samples, "
                f"{frames} frames"
            )
        if stored <= 0 or stored > allocated:
            raise InvalidDicom(f"Bits Stored {stored} does not fit Bits Allocated {allocated}")
        return cls(rows, cols, samples, frames, allocated, stored, bool(signed))

    @property
    def pixels(self) -> int:
        """Rows × Columns × Samples × Frames: what a decoder would allocate, in samples."""
        return self.rows * self.columns * self.samples * self.frames

    def check_budget(self, *, max_pixels: int) -> None:
        """See :func:`check_pixel_budget`."""
        check_pixel_budget(
            rows=self.rows,
            columns=self.columns,
            samples=self.samples,
            frames=self.frames,
            max_pixels=max_pixels,
        )


def check_pixel_budget(
    *, rows: int, columns: int, samples: int, frames: int, max_pixels: int
) -> None:
    """Refuse a pixel bomb from its declared size alone (ImageTooLarge, 413)."""
    pixels = rows * columns * samples * frames
    if pixels > max_pixels:
        raise ImageTooLarge(
            f"The image declares {rows}×{columns}×{samples}×{frames} (Rows×Columns×Samples×"
            f"Frames) = {pixels:,} pixels, more than the limit of {max_pixels:,}"
        )


def frame_count(ds: Dataset) -> int:
    """Number of Frames (0028,0008), 1 when absent or empty (PS3.3 §C.7.6.6)."""
    return _int(ds, "NumberOfFrames", 1) or 1


# Retired for native Pixel Data, so pydicom does not size them: 2 of every 3 (422) or half (420)
# of the full samples are stored (PS3.3 §C.7.6.3.1.2).
_RETIRED_SUBSAMPLED = {"YBR_PARTIAL_422": (2, 3), "YBR_PARTIAL_420": (1, 2)}


def expected_pixel_bytes(geometry: ImageGeometry, photometric: str) -> int:
    """The length native Pixel Data must have, without its padding byte (PS3.5 §8.1.1).

    pydicom's ``get_expected_length`` does the arithmetic (1-bit packing, YBR_FULL_422).
    """
    probe = Dataset()
    probe.Rows = geometry.rows
    probe.Columns = geometry.columns
    probe.SamplesPerPixel = geometry.samples
    probe.NumberOfFrames = geometry.frames
    probe.BitsAllocated = geometry.bits_allocated
    probe.PhotometricInterpretation = photometric
    expected = int(get_expected_length(probe))
    if photometric in _RETIRED_SUBSAMPLED:
        kept, of = _RETIRED_SUBSAMPLED[photometric]
        expected = expected * kept // of
    return expected


def check_native_pixel_data(ds: Dataset, geometry: ImageGeometry) -> None:
    """Native Pixel Data holds exactly what the header declares (PS3.5 §8.1.1: the value is
    padded to an even length with one byte at most); a shorter value means the file was cut
    off, a longer one that the header is wrong. Either way the pixels cannot be trusted.

    1-bit data is only refused when short: some writers pad each frame to a whole byte, and
    dicomgate stores 1-bit images unchanged anyway.
    """
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    expected = expected_pixel_bytes(geometry, photometric)
    actual = len(ds.PixelData)
    longest = expected + (expected & 1) if geometry.bits_allocated >= 8 else actual
    if expected <= actual <= longest:
        return
    g = geometry
    detail = (
        f"Pixel Data is {actual:,} bytes but Rows×Columns×Samples×Frames at Bits Allocated "
        f"({g.rows}×{g.columns}×{g.samples}×{g.frames} at {g.bits_allocated} bits"
        f"{', ' + photometric if photometric in _SUBSAMPLED_NAMES else ''}) requires {expected:,}"
    )
    if actual < expected:
        raise InvalidDicom(f"The DICOM file is truncated: {detail}")
    raise InvalidDicom(detail)


_SUBSAMPLED_NAMES = frozenset({"YBR_FULL_422", *_RETIRED_SUBSAMPLED})
