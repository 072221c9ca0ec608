"""Small compressed DICOM files of every compressed transfer syntax, and hostile variants.

Each seed is a 16×16 image encoded by an independent encoder (imagecodecs, or pydicom's RLE
encoder), one fragment per frame. ``with_header_size`` rewrites the image size the first
frame's codestream declares, leaving the dataset as it was: the pixel bomb of issue 12.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import imagecodecs
import numpy as np
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import UID, RLELossless

from tests.builders import make_dataset, to_bytes

SIZE = 16


@dataclass(frozen=True)
class Seed:
    """How to make one syntax's file: bits of the image and the frame encoder."""

    syntax: str
    bits: int
    encode: Callable[[np.ndarray], bytes]


def _j2k(arr: np.ndarray) -> bytes:
    return bytes(imagecodecs.jpeg2k_encode(arr, codecformat="J2K", reversible=True, level=0))


def _htj2k(arr: np.ndarray) -> bytes:
    return bytes(imagecodecs.htj2k_encode(arr, reversible=True))


SEEDS: dict[str, Seed] = {
    "jpeg-baseline": Seed(
        "1.2.840.10008.1.2.4.50", 8, lambda a: bytes(imagecodecs.jpeg8_encode(a, level=95))
    ),
    "jpeg-extended": Seed(
        "1.2.840.10008.1.2.4.51",
        12,
        lambda a: bytes(imagecodecs.jpeg8_encode(a, level=95, bitspersample=12)),
    ),
    "jpeg-lossless": Seed(
        "1.2.840.10008.1.2.4.57",
        12,
        lambda a: bytes(imagecodecs.jpeg8_encode(a, lossless=True, predictor=2, bitspersample=12)),
    ),
    "jpeg-lossless-sv1": Seed(
        "1.2.840.10008.1.2.4.70",
        12,
        lambda a: bytes(imagecodecs.jpeg8_encode(a, lossless=True, predictor=1, bitspersample=12)),
    ),
    "jpeg-ls": Seed("1.2.840.10008.1.2.4.80", 12, lambda a: bytes(imagecodecs.jpegls_encode(a))),
    "jpeg-ls-near": Seed(
        "1.2.840.10008.1.2.4.81", 12, lambda a: bytes(imagecodecs.jpegls_encode(a, level=2))
    ),
    "j2k-lossless": Seed("1.2.840.10008.1.2.4.90", 12, _j2k),
    "j2k": Seed("1.2.840.10008.1.2.4.91", 12, _j2k),
    "htj2k-lossless": Seed("1.2.840.10008.1.2.4.201", 12, _htj2k),
    "htj2k": Seed("1.2.840.10008.1.2.4.203", 12, _htj2k),
    "rle": Seed(str(RLELossless), 12, lambda a: b""),  # encoded by pydicom, see compressed()
}


def native(seed: Seed) -> Dataset:
    """The uncompressed 16×16 image a seed encodes."""
    allocated = 8 if seed.bits <= 8 else 16
    return make_dataset(rows=SIZE, columns=SIZE, bits_allocated=allocated, bits_stored=seed.bits)


def with_frames(ds: Dataset, syntax: str, frames: list[bytes]) -> Dataset:
    """``ds`` with these encapsulated frames (basic offset table) in ``syntax``."""
    out = copy.deepcopy(ds)
    out.PixelData = encapsulate(frames, has_bot=True)
    out["PixelData"].VR = "OB"
    out["PixelData"].is_undefined_length = True
    out.file_meta.TransferSyntaxUID = UID(syntax)
    return out


def compressed(name: str) -> Dataset:
    """A valid file of the named seed's syntax (its frame decodes to ``native(seed)``)."""
    seed = SEEDS[name]
    ds = native(seed)
    if seed.syntax == RLELossless:
        ds.compress(RLELossless)
        return ds
    return with_frames(ds, seed.syntax, [seed.encode(ds.pixel_array)])


def first_frame(ds: Dataset) -> bytes:
    return next(generate_frames(ds.PixelData, number_of_frames=1))


def _sof_offset(frame: bytes, markers: set[int]) -> int:
    """Offset of the frame header parameters (after marker and length) in a JPEG/JPEG-LS frame."""
    pos = 2
    while frame[pos + 1] not in markers:
        pos += 2 + int.from_bytes(frame[pos + 2 : pos + 4], "big")
    return pos + 4


JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xF7}


def resize_header(frame: bytes, syntax: str, rows: int, columns: int) -> bytes:
    """The frame with its codestream header declaring rows × columns (nothing else changed)."""
    buf = bytearray(frame)
    if syntax.startswith("1.2.840.10008.1.2.4.9") or syntax.startswith("1.2.840.10008.1.2.4.20"):
        # ISO/IEC 15444-1 §A.5.1: SOC, SIZ, Lsiz, Rsiz, then Xsiz, Ysiz … XTsiz, YTsiz.
        buf[8:12] = columns.to_bytes(4, "big")
        buf[12:16] = rows.to_bytes(4, "big")
        buf[24:28] = columns.to_bytes(4, "big")  # one tile, so the tile grid stays valid
        buf[28:32] = rows.to_bytes(4, "big")
        return bytes(buf)
    if syntax == RLELossless:  # no size in an RLE header: a third segment where there are 2
        buf[0:4] = (3).to_bytes(4, "little")
        buf[12:16] = (len(frame) - 2).to_bytes(4, "little")
        return bytes(buf)
    pos = _sof_offset(frame, JPEG_SOF)  # T.81 §B.2.2: P, Y, X
    buf[pos + 1 : pos + 3] = rows.to_bytes(2, "big")
    buf[pos + 3 : pos + 5] = columns.to_bytes(2, "big")
    return bytes(buf)


def bomb(name: str, *, size: int = 60000) -> bytes:
    """A Part 10 file whose dataset says 16×16 and whose codestream says size × size."""
    ds = compressed(name)
    frame = resize_header(first_frame(ds), SEEDS[name].syntax, size, size)
    return to_bytes(with_frames(ds, SEEDS[name].syntax, [frame]))
