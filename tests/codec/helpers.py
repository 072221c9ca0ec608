"""Checks shared by the codec tests: an independent decoder and codestream/dataset inspection."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragments, parse_basic_offsets
from pydicom.pixels import pixel_array

# What lossless transcoding may change (SPEC "Transcoding rules").
ALLOWED_CHANGES = {"PixelData", "PhotometricInterpretation", "PlanarConfiguration"}
ALLOWED_META_CHANGES = {
    "TransferSyntaxUID",
    "ImplementationClassUID",
    "ImplementationVersionName",
    "FileMetaInformationGroupLength",
    "FileMetaInformationVersion",
    "MediaStorageSOPClassUID",
    "MediaStorageSOPInstanceUID",
    "SourceApplicationEntityTitle",
}


def read(data: bytes) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    if "TransferSyntaxUID" not in ds.file_meta:  # a bare dataset: as pydicom read it
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (
            "1.2.840.10008.1.2"
            if implicit
            else "1.2.840.10008.1.2.1"
            if little
            else "1.2.840.10008.1.2.2"
        )
    return ds


def independent_pixels(data: bytes) -> np.ndarray:
    """Pixels decoded by pydicom with pylibjpeg(-openjpeg), never imagecodecs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pixel_array(read(data), decoding_plugin="pylibjpeg", raw=True)


def source_pixels(data: bytes) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pixel_array(read(data), raw=True)


@dataclass(frozen=True)
class Codestream:
    progression: int  # 0 LRCP … 2 RPCL
    levels: int
    mct: int
    has_tlm: bool
    tile_parts: int
    precision: int
    signed: bool
    width: int
    height: int


def parse_codestream(stream: bytes) -> Codestream:
    """Walk the main header and tile-part headers of a J2K codestream (ISO 15444-1 Annex A)."""
    assert stream[:2] == b"\xff\x4f", "no SOC"
    i, progression, levels, mct, tlm, parts = 2, -1, -1, -1, False, 0
    precision, signed, width, height = 0, False, 0, 0
    while i < len(stream):
        marker = int.from_bytes(stream[i : i + 2], "big")
        if marker == 0xFFD9:
            break
        length = int.from_bytes(stream[i + 2 : i + 4], "big")
        if marker == 0xFF90:  # SOT: Psot is the whole tile-part length
            parts += 1
            i += int.from_bytes(stream[i + 6 : i + 10], "big")
            continue
        if marker == 0xFF51:
            width = int.from_bytes(stream[i + 6 : i + 10], "big")
            height = int.from_bytes(stream[i + 10 : i + 14], "big")
            ssiz = stream[i + 40]
            precision, signed = (ssiz & 0x7F) + 1, bool(ssiz & 0x80)
        elif marker == 0xFF52:
            progression, mct, levels = stream[i + 5], stream[i + 8], stream[i + 9]
        elif marker == 0xFF55:
            tlm = True
        i += 2 + length
    return Codestream(progression, levels, mct, tlm, parts, precision, signed, width, height)


def frames_of(data: bytes) -> tuple[list[bytes], list[int]]:
    """The fragments of an encapsulated Pixel Data and its Basic Offset Table."""
    ds = read(data)
    buf = io.BytesIO(ds.PixelData)
    offsets = parse_basic_offsets(buf)
    fragments = list(generate_fragments(buf))
    return fragments, offsets


def assert_same_except_allowed(
    source: Dataset, output: Dataset, *, extra: set[str] | frozenset[str] = frozenset()
) -> None:
    """Every element of ``source`` is in ``output`` with the same value, and nothing is added."""
    allowed = ALLOWED_CHANGES | set(extra)
    # Group lengths (gggg,0000) are retired and go stale when Pixel Data changes: dropped.
    src = {e.tag: e for e in source if e.keyword not in allowed and e.tag.element != 0}
    out = {e.tag: e for e in output if e.keyword not in allowed}
    assert set(src) == set(out), f"tags differ: {set(src) ^ set(out)}"
    big_endian = source.file_meta.get("TransferSyntaxUID") == "1.2.840.10008.1.2.2"
    for tag, elem in src.items():
        expected = elem.value
        size = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}.get(elem.VR)
        if big_endian and size and isinstance(expected, bytes):  # swapped to little endian
            expected = np.frombuffer(expected, f">u{size}").astype(f"<u{size}").tobytes()
        assert out[tag].value == expected, f"{elem.keyword or tag} changed"
    src_meta = {e.tag: e.value for e in source.file_meta if e.keyword not in ALLOWED_META_CHANGES}
    out_meta = {e.tag: e.value for e in output.file_meta if e.keyword not in ALLOWED_META_CHANGES}
    assert src_meta == out_meta
