"""Read each frame's codestream header and hold it against the dataset before anything decodes.

A decoder sizes its buffers from the codestream, not from the dataset: a 900-byte JPEG 2000 file
whose dataset says 8×8 but whose SIZ marker says 60000×60000 passes every check made on the
dataset (the pixel cap included) and then makes the decoder allocate gigabytes. So every frame's
header is read here, with a few bytes of parsing and no decoder, and compared with Rows,
Columns, Samples per Pixel and Bits Allocated. Nothing may be decoded unless this passed:

- JPEG 2000 and HTJ2K: the SIZ marker segment, ISO/IEC 15444-1 §A.5.1 (HTJ2K, ISO/IEC 15444-15,
  keeps the same main header).
- JPEG (baseline, extended, lossless): the frame header SOFn, ITU-T T.81 §B.2.2.
- JPEG-LS: the frame header SOF55, ITU-T T.87 §C.2.2 (and no LSE "oversize image dimension"
  segment, §C.2.4.1.4: DICOM's Rows and Columns never need one).
- RLE Lossless: the RLE header, DICOM PS3.5 Annex G (segment count and offsets).

Pure (no web, database or HTTP): it runs in the worker pool, where decoding happens.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise

from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames, get_frame
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dicomgate.dicom.image import ImageGeometry
from dicomgate.errors import InvalidCodestream

# --- Transfer syntaxes, by the header their frames carry ------------------------------------
JPEG_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.4.50",  # JPEG Baseline (Process 1)
        "1.2.840.10008.1.2.4.51",  # JPEG Extended (Process 2 & 4)
        "1.2.840.10008.1.2.4.57",  # JPEG Lossless, Non-Hierarchical (Process 14)
        "1.2.840.10008.1.2.4.70",  # JPEG Lossless, First-Order Prediction (Process 14 SV1)
    }
)
JPEG_LS_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
        "1.2.840.10008.1.2.4.81",  # JPEG-LS Lossy (Near-Lossless)
    }
)
J2K_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.4.90",  # JPEG 2000 (Lossless Only)
        "1.2.840.10008.1.2.4.91",  # JPEG 2000
        "1.2.840.10008.1.2.4.92",  # JPEG 2000 Part 2 Multi-component (Lossless Only)
        "1.2.840.10008.1.2.4.93",  # JPEG 2000 Part 2 Multi-component
        "1.2.840.10008.1.2.4.201",  # HTJ2K (Lossless Only)
        "1.2.840.10008.1.2.4.202",  # HTJ2K with RPCL Options (Lossless Only)
        "1.2.840.10008.1.2.4.203",  # HTJ2K
    }
)
RLE_SYNTAX = "1.2.840.10008.1.2.5"
NATIVE_SYNTAXES = frozenset(
    {
        ImplicitVRLittleEndian,
        ExplicitVRLittleEndian,
        ExplicitVRBigEndian,
        DeflatedExplicitVRLittleEndian,
    }
)

_J2K_MAX_TILES = 65535  # Isot is 0…65534 (ISO/IEC 15444-1 §A.4.2)
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"  # ISO/IEC 15444-1 §I.5.1


@dataclass(frozen=True)
class FrameHeader:
    """What a frame's codestream says it holds (what a decoder will allocate for)."""

    kind: str  # "JPEG 2000", "JPEG", "JPEG-LS" or "RLE"
    rows: int | None
    columns: int | None
    components: int
    precision: int  # bits per sample (for RLE: Bits Allocated)
    problem: str = ""  # why no decoder should see it, once its size agrees with the dataset


class _Unreadable(Exception):
    """Internal: a header that cannot be parsed (no decoder could use it: never decoded)."""


class _Disagrees(Exception):
    """Internal: a header that was read and contradicts the dataset (refused, with the frame)."""


# --- Byte readers ----------------------------------------------------------------------------
def _u8(data: bytes, pos: int) -> int:
    if pos + 1 > len(data):
        raise _Unreadable("it ends inside its header")
    return data[pos]


def _u16(data: bytes, pos: int) -> int:
    if pos + 2 > len(data):
        raise _Unreadable("it ends inside its header")
    return int.from_bytes(data[pos : pos + 2], "big")


def _u32(data: bytes, pos: int) -> int:
    if pos + 4 > len(data):
        raise _Unreadable("it ends inside its header")
    return int.from_bytes(data[pos : pos + 4], "big")


# --- JPEG 2000 / HTJ2K -----------------------------------------------------------------------
def _j2k_codestream_start(frame: bytes) -> int:
    """Offset of the SOC marker: 0, or inside the ``jp2c`` box of a JP2 file.

    PS3.5 §A.4.4 says the JP2 file format header shall not be included, but decoders accept it,
    so a hostile file could hide its codestream there: follow the boxes (ISO/IEC 15444-1 §I.4).
    """
    if not frame.startswith(_JP2_SIGNATURE):
        return 0
    pos = 0
    while pos + 8 <= len(frame):
        length, box = _u32(frame, pos), frame[pos + 4 : pos + 8]
        header = 8
        if length == 1:  # XLBox: 64-bit length
            if pos + 16 > len(frame):
                break
            length, header = int.from_bytes(frame[pos + 8 : pos + 16], "big"), 16
        elif length == 0:  # the box runs to the end
            length = len(frame) - pos
        if box == b"jp2c":
            return pos + header
        if length < header:
            break
        pos += length
    raise _Unreadable("its JP2 wrapper holds no codestream box")


def read_j2k_header(frame: bytes) -> FrameHeader:
    """The SIZ marker segment of a JPEG 2000 / HTJ2K codestream (ISO/IEC 15444-1 §A.5.1).

    SIZ must follow SOC at once. Image size is Xsiz−XOsiz by Ysiz−YOsiz; the precision of a
    component is (Ssiz & 0x7F) + 1; the tile grid may hold at most 65535 tiles (§A.4.2).
    """
    start = _j2k_codestream_start(frame)
    if frame[start : start + 4] != b"\xff\x4f\xff\x51":
        raise _Unreadable("it does not start with the SOC and SIZ markers")
    p = start + 4
    lsiz = _u16(frame, p)
    xsiz, ysiz = _u32(frame, p + 4), _u32(frame, p + 8)
    xosiz, yosiz = _u32(frame, p + 12), _u32(frame, p + 16)
    xtsiz, ytsiz = _u32(frame, p + 20), _u32(frame, p + 24)
    xtosiz, ytosiz = _u32(frame, p + 28), _u32(frame, p + 32)
    csiz = _u16(frame, p + 36)
    if lsiz != 38 + 3 * csiz or not 1 <= csiz <= 16384:
        raise _Unreadable(f"its SIZ segment is malformed (Lsiz {lsiz}, Csiz {csiz})")
    if xsiz <= xosiz or ysiz <= yosiz or xtsiz == 0 or ytsiz == 0:
        raise _Unreadable("its SIZ segment declares an empty image or tile")
    problem = ""
    if xtosiz > xosiz or ytosiz > yosiz or xtsiz + xtosiz <= xosiz or ytsiz + ytosiz <= yosiz:
        problem = "its SIZ segment's tile grid does not cover the image (§A.5.1)"
    tiles = -(-(xsiz - xtosiz) // xtsiz) * -(-(ysiz - ytosiz) // ytsiz)
    if tiles > _J2K_MAX_TILES:
        problem = f"its SIZ segment declares {tiles:,} tiles (at most 65535)"
    precision = 0
    for c in range(csiz):
        ssiz = _u8(frame, p + 38 + 3 * c)
        xrsiz, yrsiz = _u8(frame, p + 39 + 3 * c), _u8(frame, p + 40 + 3 * c)
        if xrsiz == 0 or yrsiz == 0:
            raise _Unreadable("its SIZ segment has a component sub-sampling of 0")
        precision = max(precision, (ssiz & 0x7F) + 1)
    return FrameHeader("JPEG 2000", ysiz - yosiz, xsiz - xosiz, csiz, precision, problem)


# --- JPEG and JPEG-LS ------------------------------------------------------------------------
# T.81 §B.1.1.3: markers with no length (SOI, EOI, RSTm, TEM).
_STANDALONE = frozenset({0xD8, 0xD9, 0x01, *range(0xD0, 0xD8)})
# T.81 Table B.1: SOF0…SOF15 except DHT (C4), JPG (C8) and DAC (CC).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_LS_SOF = frozenset({0xF7})  # SOF55, T.87 §C.2.2
_SOS = 0xDA
_LSE = 0xF8  # T.87 §C.2.4.1


def _jpeg_marker_segments(frame: bytes) -> Iterator[tuple[int, int, int]]:
    """(marker, offset of its parameters, their length) for each header segment up to SOS."""
    if frame[:2] != b"\xff\xd8":
        raise _Unreadable("it does not start with the SOI marker")
    pos = 2
    while True:
        if _u8(frame, pos) != 0xFF:
            raise _Unreadable(f"a marker was expected at byte {pos}")
        while _u8(frame, pos) == 0xFF:  # T.81 §B.1.1.2: fill bytes before a marker
            pos += 1
        marker = _u8(frame, pos)
        pos += 1
        if marker in _STANDALONE:
            if marker == 0xD9:
                raise _Unreadable("it ends (EOI) before its first scan")
            continue
        length = _u16(frame, pos)
        if length < 2:
            raise _Unreadable(f"marker segment FF{marker:02X} has length {length}")
        yield marker, pos + 2, length - 2
        if marker == _SOS:
            return
        pos += length


def _read_frame_header(frame: bytes, kind: str, sof_markers: frozenset[int]) -> FrameHeader:
    """The one frame header (SOFn: P, Y, X, Nf) before the first scan (T.81 §B.2.2)."""
    found: FrameHeader | None = None
    for marker, pos, length in _jpeg_marker_segments(frame):
        if marker in sof_markers:
            if found is not None:
                raise _Unreadable("it has more than one frame header")
            if length < 6:
                raise _Unreadable("its frame header is too short")
            precision, rows, columns = _u8(frame, pos), _u16(frame, pos + 1), _u16(frame, pos + 3)
            found = FrameHeader(kind, rows, columns, _u8(frame, pos + 5), precision)
        elif marker in _JPEG_SOF | _JPEG_LS_SOF:
            raise _Unreadable(f"its frame header FF{marker:02X} is not one {kind} uses")
        elif marker == _LSE and _u8(frame, pos) == 4:
            # T.87 §C.2.4.1.4: redefines X and Y beyond 65535; DICOM sizes never need it.
            raise _Unreadable("it redefines the image size in an LSE marker segment")
        elif marker == _SOS and found is None:
            raise _Unreadable("its first scan comes before any frame header")
    if found is None:
        raise _Unreadable("it has no frame header")
    return found


def read_jpeg_header(frame: bytes) -> FrameHeader:
    """The frame header of a JPEG codestream (ITU-T T.81 §B.2.2)."""
    return _read_frame_header(frame, "JPEG", _JPEG_SOF)


def read_jpeg_ls_header(frame: bytes) -> FrameHeader:
    """The SOF55 frame header of a JPEG-LS codestream (ITU-T T.87 §C.2.2)."""
    return _read_frame_header(frame, "JPEG-LS", _JPEG_LS_SOF)


# --- RLE -------------------------------------------------------------------------------------
def read_rle_header(frame: bytes) -> tuple[int, ...]:
    """Segment offsets from the 64-byte RLE header (PS3.5 §G.5): count, then 15 offsets."""
    if len(frame) < 64:
        raise _Unreadable("it is shorter than the 64-byte RLE header")
    values = struct.unpack("<16L", frame[:64])
    count = values[0]
    if not 1 <= count <= 15:
        raise _Unreadable(f"its RLE header declares {count} segments (1 to 15)")
    offsets = values[1 : 1 + count]
    if offsets[0] != 64 or any(b <= a for a, b in pairwise(offsets)):
        raise _Unreadable("its RLE segment offsets do not start at 64 and increase")
    if offsets[-1] >= len(frame):
        raise _Unreadable("an RLE segment starts past the end of the frame")
    return tuple(offsets)


def _rle_header(frame: bytes, shape: ImageGeometry) -> FrameHeader:
    """The RLE header, held against the dataset here (it has no image size of its own).

    PS3.5 §G.2: one segment per byte of each sample (Bits Allocated / 8 × Samples per Pixel).
    PackBits (§G.3.1) codes n bytes in at most 2n (one-byte literal runs), so a longer segment
    cannot decode to one Rows × Columns byte plane; a decoder would expand it (up to 64 times)
    before noticing.
    """
    offsets = read_rle_header(frame)
    bytes_per_sample = max(1, shape.bits_allocated // 8)
    expected = shape.samples * bytes_per_sample
    if len(offsets) != expected:
        raise _Disagrees(
            f"{len(offsets)} RLE segments where Samples per Pixel × bytes per sample is "
            f"{shape.samples} × {bytes_per_sample}"
        )
    ends = (*offsets[1:], len(frame))
    plane = shape.rows * shape.columns
    for index, (start, end) in enumerate(zip(offsets, ends, strict=True)):
        if end - start > 2 * plane + 2:
            raise _Disagrees(
                f"an RLE segment {index + 1} of {end - start:,} bytes, more than any coding "
                f"of a {shape.rows}×{shape.columns} byte plane"
            )
    return FrameHeader("RLE", None, None, shape.samples, shape.bits_allocated)


# --- The check -------------------------------------------------------------------------------
Reader = Callable[[bytes, ImageGeometry], FrameHeader]
HEADER_READERS: dict[str, Reader] = {
    **dict.fromkeys(J2K_SYNTAXES, lambda frame, _shape: read_j2k_header(frame)),
    **dict.fromkeys(JPEG_SYNTAXES, lambda frame, _shape: read_jpeg_header(frame)),
    **dict.fromkeys(JPEG_LS_SYNTAXES, lambda frame, _shape: read_jpeg_ls_header(frame)),
    RLE_SYNTAX: _rle_header,
}


def _differences(header: FrameHeader, shape: ImageGeometry) -> list[str]:
    found = []
    if header.rows is not None and (header.rows, header.columns) != (shape.rows, shape.columns):
        found.append(
            f"{header.columns}×{header.rows} pixels where Columns×Rows is "
            f"{shape.columns}×{shape.rows}"
        )
    if header.components != shape.samples:
        found.append(f"{header.components} components where Samples per Pixel is {shape.samples}")
    if header.precision > shape.bits_allocated:
        found.append(
            f"{header.precision}-bit samples where Bits Allocated is {shape.bits_allocated}"
        )
    return found


def _frames(ds: Dataset, shape: ImageGeometry, only: int | None) -> Iterator[tuple[int, bytes]]:
    """(number, frame) for every frame a decoder would be given, or for frame ``only`` (zero
    based) when just that one will be decoded: the same split pydicom's decoders make (PS3.5
    §A.4), including any frames beyond Number of Frames (pydicom may yield those too)."""
    offsets = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        offsets = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    if only is not None:
        frame = get_frame(
            ds.PixelData, only, number_of_frames=shape.frames, extended_offsets=offsets
        )
        yield only + 1, frame
        return
    frames = generate_frames(ds.PixelData, number_of_frames=shape.frames, extended_offsets=offsets)
    yield from enumerate(frames, start=1)


@dataclass(frozen=True)
class CodestreamCheck:
    """What the check found: may the pixel data be decoded, and if not, why not."""

    decodable: bool
    reason: str = ""


def check_codestreams(ds: Dataset, syntax: str, *, frame: int | None = None) -> CodestreamCheck:
    """Hold every frame's codestream header (or only ``frame``'s, zero based, when only that
    one is to be decoded) against the dataset; nothing is decoded.

    Raises InvalidCodestream (422) when a frame's header disagrees with the dataset (the pixel
    bomb: a decoder would size its buffers from the header), InvalidDicom (400) when the
    dataset's own image description is unusable. Otherwise says whether the pixel data may be
    decoded: yes for native data and when every frame's header was read and agrees; no when
    the syntax has no header reader here, or a header cannot be read (no decoder could use it
    either): such pixel data is kept as it is and never decoded.
    """
    if "PixelData" not in ds or syntax in NATIVE_SYNTAXES:
        return CodestreamCheck(decodable=True)
    reader = HEADER_READERS.get(str(syntax))
    if reader is None:
        return CodestreamCheck(False, f"no codestream header reader for transfer syntax {syntax}")
    shape = ImageGeometry.of(ds)
    name = UID(syntax).name
    index = 0
    try:
        for index, stream in _frames(ds, shape, frame):
            try:
                header = reader(stream, shape)
                differences = _differences(header, shape)
            except _Unreadable as exc:
                return CodestreamCheck(False, f"frame {index}'s {name} codestream: {exc}")
            except _Disagrees as exc:
                differences = [str(exc)]
            if differences:
                raise InvalidCodestream(
                    f"Frame {index}'s {name} codestream declares "
                    + " and ".join(differences)
                    + "; the file was refused and nothing was decoded"
                )
            if header.problem:
                return CodestreamCheck(
                    False, f"frame {index}'s {name} codestream: {header.problem}"
                )
    except (ValueError, TypeError, EOFError, struct.error) as exc:  # pydicom's frame split
        return CodestreamCheck(False, f"the {name} pixel data cannot be split into frames: {exc}")
    if index == 0:
        return CodestreamCheck(False, f"the {name} pixel data holds no frame")
    return CodestreamCheck(decodable=True)
