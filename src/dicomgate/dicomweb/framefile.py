"""The one frame of a single-frame stored file, cut out of the whole file (no decoding).

A viewer's frame request then costs one Orthanc call (the file, whose attachment UUID comes in
the same answer) instead of a look-up and Orthanc's own frame extraction. The walk follows the
encoding rules of PS3.5 §7 (data elements, explicit or implicit VR little endian), §7.5
(sequences and items of defined or undefined length) and §A.4 (encapsulated pixel data: the
Basic Offset Table item, then fragments, then the sequence delimiter). It is strict: anything
it does not fully understand — big endian, deflate, a truncated or inconsistent element, float
pixel data, bits not in whole bytes, more than one frame — answers ``None``, and the caller
takes the general path (Orthanc's frame, or pydicom in the worker pool). It is pure and cheap
(a CT header is a few hundred elements): it runs on the event loop.
"""

from __future__ import annotations

import struct

from dicomgate.codec.native import PixelFacts
from dicomgate.codec.profiles import SUBSAMPLED_PHOTOMETRIC

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
NOT_ENCAPSULATED = frozenset(
    {
        IMPLICIT_LE,
        EXPLICIT_LE,
        "1.2.840.10008.1.2.1.99",  # deflated: the data set is compressed
        "1.2.840.10008.1.2.2",  # big endian
    }
)
PIXEL_DATA = 0x7FE00010
FLOAT_PIXEL_DATA = (0x7FE00008, 0x7FE00009)
ITEM = 0xFFFEE000
ITEM_END = 0xFFFEE00D
SEQUENCE_END = 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF
# PS3.5 Table 7.1-1: VRs with a 2-byte reserved field and a 4-byte length.
LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN"})
LONG_VRS |= {b"UR", b"UT", b"UV"}
MAX_DEPTH = 32  # nested sequences

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_TAG = struct.Struct("<HH")


class _Malformed(Exception):
    """The file is not what the walk fully understands: the caller takes the general path."""


def _tag(data: bytes, pos: int) -> int:
    if pos + 4 > len(data):
        raise _Malformed
    group, element = _TAG.unpack_from(data, pos)
    return int(group) << 16 | int(element)


def _u32(data: bytes, pos: int) -> int:
    if pos + 4 > len(data):
        raise _Malformed
    return int(_U32.unpack_from(data, pos)[0])


def _header(data: bytes, pos: int, explicit: bool) -> tuple[int, bytes, int, int]:
    """(tag, VR or b"", value length, value offset) of the element at ``pos``."""
    tag = _tag(data, pos)
    if tag >> 16 == 0xFFFE or not explicit:  # items and delimiters have no VR (§7.5)
        return tag, b"", _u32(data, pos + 4), pos + 8
    if pos + 8 > len(data):
        raise _Malformed
    vr = data[pos + 4 : pos + 6]
    if vr in LONG_VRS:
        return tag, vr, _u32(data, pos + 8), pos + 12
    if not (65 <= vr[0] <= 90 and 65 <= vr[1] <= 90):
        raise _Malformed
    return tag, vr, int(_U16.unpack_from(data, pos + 6)[0]), pos + 8


def _skip_items(data: bytes, pos: int, explicit: bool, depth: int) -> int:
    """Past a sequence of undefined length whose first item starts at ``pos`` (§7.5.2)."""
    if depth > MAX_DEPTH:
        raise _Malformed
    while True:
        tag, _, length, start = _header(data, pos, False)
        if tag == SEQUENCE_END:
            return start
        if tag != ITEM:
            raise _Malformed
        if length != UNDEFINED:
            pos = start + length
            continue
        pos = start
        while _tag(data, pos) != ITEM_END:
            pos = _skip_element(data, pos, explicit, depth + 1)
        pos += 8


def _skip_element(data: bytes, pos: int, explicit: bool, depth: int) -> int:
    """The offset just past the element at ``pos``."""
    tag, vr, length, start = _header(data, pos, explicit)
    if length != UNDEFINED:
        end = start + length
        if end > len(data):
            raise _Malformed
        return end
    if tag == PIXEL_DATA or tag >> 16 == 0xFFFE:
        raise _Malformed  # encapsulated pixel data inside a sequence, or a stray delimiter
    # An SQ (or, PS3.5 §6.2.2, an UN of undefined length: implicit VR little endian inside).
    return _skip_items(data, start, explicit and vr != b"UN", depth)


def _meta(data: bytes) -> tuple[str, int]:
    """The file meta's Transfer Syntax UID and where the data set starts (PS3.10 §7.1)."""
    if data[128:132] != b"DICM":
        raise _Malformed
    pos, syntax = 132, None
    while pos + 4 <= len(data) and _tag(data, pos) >> 16 == 0x0002:
        tag, _, length, start = _header(data, pos, True)
        if length == UNDEFINED or start + length > len(data):
            raise _Malformed
        if tag == 0x00020010:
            syntax = data[start : start + length].decode("ascii", "replace").strip("\x00 ")
        pos = start + length
    if not syntax:
        raise _Malformed
    return syntax, pos


def _fragments(data: bytes, pos: int) -> list[memoryview]:
    """The fragments after the Basic Offset Table item at ``pos``, up to the delimiter."""
    view = memoryview(data)
    tag, _, length, start = _header(data, pos, False)
    if tag != ITEM or length == UNDEFINED:
        raise _Malformed
    pos = start + length
    out: list[memoryview] = []
    while True:
        tag, _, length, start = _header(data, pos, False)
        if tag == SEQUENCE_END:
            return out
        if tag != ITEM or length == UNDEFINED or start + length > len(data):
            raise _Malformed
        out.append(view[start : start + length])
        pos = start + length


def can_cut(transfer_syntax: str) -> bool:
    """Whether ``single_frame`` handles the syntax: little endian native, or encapsulated."""
    return transfer_syntax in (IMPLICIT_LE, EXPLICIT_LE) or transfer_syntax not in NOT_ENCAPSULATED


def file_syntax(data: bytes) -> str | None:
    """The Transfer Syntax UID in the file's meta information, or None if it has none."""
    try:
        return _meta(data)[0]
    except _Malformed:
        return None


def single_frame(data: bytes, transfer_syntax: str, facts: PixelFacts) -> bytes | None:
    """Frame 1 of a single-frame file stored in ``transfer_syntax``, as stored (the
    codestream, or the native pixel bytes), or None where the general path must decide."""
    if facts.number_of_frames != 1:
        return None
    try:
        syntax, pos = _meta(data)
        if syntax != transfer_syntax:
            return None  # the file says otherwise: the caller's label is not for this file
        if not can_cut(syntax):
            return None
        explicit = syntax != IMPLICIT_LE
        while True:
            tag = _tag(data, pos)
            if tag in FLOAT_PIXEL_DATA or tag > PIXEL_DATA:
                return None
            if tag == PIXEL_DATA:
                break
            pos = _skip_element(data, pos, explicit, 0)
        _, _, length, start = _header(data, pos, explicit)
        if syntax not in NOT_ENCAPSULATED:
            if length != UNDEFINED:
                return None
            fragments = _fragments(data, start)
            return b"".join(fragments) if fragments else None
        size = facts.rows * facts.columns * facts.samples_per_pixel * facts.bits_allocated
        if length == UNDEFINED or facts.bits_allocated % 8 or start + length > len(data):
            return None
        if facts.photometric_interpretation in SUBSAMPLED_PHOTOMETRIC:
            return None  # fewer bytes than samples × pixels
        size //= 8
        if not 0 < size <= length:
            return None
        return data[start : start + size]
    except _Malformed:
        return None
