"""Writing a dataset back as a PS3.10 file: file meta, zeroed preamble, encapsulated pixels.

Also what writing needs first: the source's transfer syntax, a copy that does not drag the read
buffer along, and big endian values swapped to little endian (PS3.5 §7.3).
"""

from __future__ import annotations

import copy
import struct
from io import BytesIO

import numpy as np
import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate, encapsulate_extended
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.tag import BaseTag, tag_in_exception
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

from dicomgate import __version__
from dicomgate.dicom.preamble import zero_preamble

# dicomgate's own Implementation Class UID (a 2.25 UUID-derived UID, PS3.5 §B.2) and version name.
IMPLEMENTATION_CLASS_UID = "2.25.229437963346155452542036577102587404231"
IMPLEMENTATION_VERSION_NAME = f"DICOMGATE_{__version__}"[:16]
# Past this, a Basic Offset Table's 32-bit offsets overflow: use the Extended Offset Table.
_BOT_LIMIT = 2**32 - 1


def source_syntax(ds: Dataset) -> UID:
    """The dataset's transfer syntax: the file meta's, else how pydicom read it."""
    meta = getattr(ds, "file_meta", None)
    tsyntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if tsyntax:
        return UID(str(tsyntax))
    implicit, little = getattr(ds, "original_encoding", (True, True))
    if little:
        return ImplicitVRLittleEndian if implicit in (True, None) else ExplicitVRLittleEndian
    return ExplicitVRBigEndian


def ensure_file_meta(ds: Dataset, syntax: UID) -> None:
    """Give a dataset read without file meta (or without a Transfer Syntax UID) one."""
    if getattr(ds, "file_meta", None) is None or "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta = FileMetaDataset(getattr(ds, "file_meta", None) or {})
        ds.file_meta.TransferSyntaxUID = syntax


def write_part10(ds: Dataset, *, fast: bool = True) -> bytes:
    """Write a Part 10 file with a zeroed preamble and dicomgate's implementation identity.

    ``fast``: elements still as read (raw) are copied by :func:`_write_body` instead of through
    pydicom's per-element writer; the bytes are the same (``fast=False`` is the reference the
    tests compare with).
    """
    if not isinstance(ds, FileDataset) or getattr(ds, "file_meta", None) is None:
        meta = FileMetaDataset(getattr(ds, "file_meta", None) or FileMetaDataset())
        ds.file_meta = meta
    meta = ds.file_meta
    if "TransferSyntaxUID" not in meta:
        meta.TransferSyntaxUID = source_syntax(ds)
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    if "FileMetaInformationVersion" not in meta:
        meta.FileMetaInformationVersion = b"\x00\x01"
    zero_preamble(ds)
    out = BytesIO()
    syntax = UID(meta.TransferSyntaxUID)
    target = (syntax.is_implicit_VR, syntax.is_little_endian)
    if getattr(ds, "original_encoding", target) not in (target, (None, None)):
        # Converting from implicit VR or big endian: the encoding follows the new syntax.
        pydicom.dcmwrite(
            out, ds, implicit_vr=target[0], little_endian=target[1], force_encoding=True
        )
    elif fast and _fast_body_applies(ds, syntax):
        # The file meta exactly as dcmwrite writes it (a dataset with no elements), then the
        # body; dcmwrite's one change to the dataset itself, done here as it would.
        shell = Dataset()
        shell.file_meta = meta
        shell.preamble = ds.preamble
        pydicom.dcmwrite(out, shell, enforce_file_format=True)
        if "PixelData" in ds:
            ds["PixelData"].is_undefined_length = syntax.is_compressed
        _write_body(out, ds)
    else:  # same encoding: raw elements are written back as read (byte-exact)
        pydicom.dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"  # (FFFE,E0DD), length 0 (PS3.5 §7.5)


def _fast_body_applies(ds: Dataset, syntax: UID) -> bool:
    """Explicit VR little endian in and out, nothing for pydicom to re-encode wholesale.

    Exactly the cases where ``pydicom.filewriter.write_dataset`` writes each raw element as its
    header plus its bytes: same encoding as read, same character set, no deflate, and no file
    meta or command elements in the dataset (dcmwrite refuses those: it still does).
    """
    return (
        syntax == ExplicitVRLittleEndian or (syntax.is_transfer_syntax and syntax.is_compressed)
    ) and (
        syntax != DeflatedExplicitVRLittleEndian
        and not syntax.is_private
        and read_as_explicit_little_endian(ds)
        and len(getattr(ds, "preamble", None) or b"\0" * 128) == 128
        and not any(tag.group in (0, 2) for tag in ds.keys())  # noqa: SIM118
    )


def read_as_explicit_little_endian(ds: Dataset) -> bool:
    """Read as explicit VR little endian, in the character set it still declares: written so
    (every transcoded output is), no element is re-encoded wholesale or has its VR corrected."""
    return getattr(ds, "original_encoding", None) == (False, True) and (
        ds.original_character_set == getattr(ds, "_character_set", object())
    )


def _write_body(out: BytesIO, ds: Dataset) -> None:
    """``pydicom.filewriter.write_dataset`` for explicit VR little endian, with its raw-element
    branch inlined: a raw element is its tag, VR, length and bytes as read. Everything else
    (converted values, Pixel Data, the odd cases) goes through pydicom's own writer."""
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    encodings = ds.get("SpecificCharacterSet", pydicom.charset.default_encoding)
    for tag in sorted(ds.keys()):
        if tag.element == 0 and tag.group > 6:
            continue  # retired group lengths are never written
        elem = ds.get_item(tag)
        raw = None
        if isinstance(elem, RawDataElement) and tag != 0x7FE00010:
            raw = raw_element_bytes(elem)
        if raw is not None:
            fp.write(raw)
        else:
            with tag_in_exception(tag):
                write_data_element(fp, elem, encodings)
    out.write(fp.getvalue())


def raw_element_bytes(elem: RawDataElement) -> bytes | None:
    """A raw element as pydicom writes it in explicit VR little endian, or None where pydicom
    would do more than copy it (an unusual VR, a value too long for its length field)."""
    vr, value = elem.VR, elem.value
    if not isinstance(vr, str) or len(vr) != 2 or not vr.isascii() or not isinstance(value, bytes):
        return None
    head = struct.pack("<HH", elem.tag >> 16, elem.tag & 0xFFFF) + vr.encode()
    if elem.length == 0xFFFFFFFF:
        if vr not in EXPLICIT_VR_LENGTH_32:
            return None
        return head + b"\0\0\xff\xff\xff\xff" + value + _DELIMITER
    if vr in EXPLICIT_VR_LENGTH_32:
        return head + struct.pack("<2xL", len(value)) + value
    if len(value) > 0xFFFF:
        return None  # pydicom rewrites the VR as UN (with a warning)
    return head + struct.pack("<H", len(value)) + value


def set_encapsulated_pixel_data(ds: Dataset, streams: list[bytes]) -> None:
    """One fragment per frame with a Basic (or, past 4 GiB, Extended) Offset Table.

    PS3.5 §A.4: encapsulated Pixel Data is OB of undefined length; the Extended Offset Table
    (7FE0,0001) and its lengths (7FE0,0002) replace a Basic Offset Table that would overflow.
    """
    total = sum(len(s) + (len(s) & 1) + 8 for s in streams)
    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if keyword in ds:
            del ds[keyword]
    if total > _BOT_LIMIT:
        pixel_data, offsets, lengths = encapsulate_extended(streams)
        ds.PixelData = pixel_data
        ds.ExtendedOffsetTable = offsets
        ds.ExtendedOffsetTableLengths = lengths
    else:
        ds.PixelData = encapsulate(streams, has_bot=True)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True


def drop_group_lengths(ds: Dataset) -> None:
    """Remove group length elements (retired, PS3.5 §7.2): stale once Pixel Data changes."""
    # keys(), not the dataset: iterating elements would convert every raw value (slow).
    for tag in [tag for tag in ds.keys() if tag.element == 0]:  # noqa: SIM118
        del ds[tag]


class CannotSwap(ValueError):
    """A big endian element whose bytes cannot be swapped safely (its VR is unknown)."""


_SWAP_SIZES = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def to_little_endian(ds: Dataset) -> None:
    """Byte-swap the binary values a big endian dataset keeps as raw bytes (PS3.5 §7.3).

    Parsed values (US, SS, FL, …) are re-encoded by pydicom; OW/OF/OL/OD/OV are bytes and must be
    swapped here. An element of unknown VR (UN) cannot be swapped safely: CannotSwap.
    """
    for elem in ds.iterall():
        if elem.tag == 0x7FE00010 or elem.value is None or elem.value == b"":
            continue
        if elem.VR == "UN":
            raise CannotSwap(f"big endian element {elem.tag} of unknown VR")
        size = _SWAP_SIZES.get(elem.VR)
        if size and isinstance(elem.value, bytes):
            elem.value = np.frombuffer(elem.value, dtype=f">u{size}").astype(f"<u{size}").tobytes()


def detached_copy(ds: Dataset) -> Dataset:
    """A deep copy of ``ds`` without the buffer pydicom keeps of the bytes it was read from.

    ``FileDataset.buffer`` is the whole file again, and ``copy.deepcopy`` copies a BytesIO's
    contents, so a plain deep copy doubles the instance in memory. The buffer is only read back
    for deferred elements: when there are none, the copy does not need it. (Pixel Data itself
    is immutable ``bytes``, which a deep copy shares; it is replaced, never changed in place.)
    """
    buffer = getattr(ds, "buffer", None)
    if buffer is None or any(_is_deferred(ds, tag) for tag in ds.keys()):  # noqa: SIM118
        return copy.deepcopy(ds)
    return copy.deepcopy(ds, {id(buffer): None})


def shared_copy(ds: Dataset, rewritten: tuple[str, ...]) -> Dataset:
    """A copy of ``ds`` sharing its elements, for a caller that changes only ``rewritten``.

    Its own element table (adding or removing elements leaves ``ds`` as it is), its own file
    meta (a deep copy: a handful of elements), and its own copies of the ``rewritten`` elements
    (their values are set in place); every other element is ``ds``'s and must not be changed in
    place. Not for a dataset whose writing re-encodes or corrects elements (see
    :func:`read_as_explicit_little_endian`) nor for big endian swapping: use
    :func:`detached_copy` there.
    """
    work = copy.copy(ds)  # the same attributes (encoding as read, preamble, …)
    work.__dict__["_dict"] = dict(ds.__dict__["_dict"])
    work.__dict__["_private_blocks"] = {}
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        work.file_meta = copy.deepcopy(meta)
    for keyword in rewritten:
        tag = tag_for_keyword(keyword)
        if tag is None or tag not in ds:
            continue
        elem = ds.get_item(tag)
        if isinstance(elem, DataElement):  # a raw element is immutable: converting it makes
            work[tag] = copy.copy(elem)  # a new one in the copy's table
    return work


def _is_deferred(ds: Dataset, tag: BaseTag) -> bool:
    """True for an element whose value pydicom has not read yet (``dcmread(defer_size=…)``)."""
    elem = ds.get_item(tag, keep_deferred=True)  # without keep_deferred it would read it
    return isinstance(elem, RawDataElement) and elem.value is None and bool(elem.length)


def write_copy(ds: Dataset, syntax: UID) -> bytes:
    """Write a copy of ``ds`` as it is (the caller's dataset and its file meta stay untouched)."""
    work = detached_copy(ds)
    meta = getattr(ds, "file_meta", None)  # its own elements: write_part10 sets some
    work.file_meta = FileMetaDataset(copy.deepcopy(meta) if meta is not None else {})
    if "TransferSyntaxUID" not in work.file_meta:
        work.file_meta.TransferSyntaxUID = syntax
    return write_part10(work)
