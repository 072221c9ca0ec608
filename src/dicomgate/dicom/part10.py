"""Writing a dataset back as a PS3.10 file: file meta, zeroed preamble, encapsulated pixels.

Also what writing needs first: the source's transfer syntax, a copy that does not drag the read
buffer along, and big endian values swapped to little endian (PS3.5 §7.3).
"""

from __future__ import annotations

import copy
from io import BytesIO

import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate, encapsulate_extended
from pydicom.tag import BaseTag
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

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


def write_part10(ds: Dataset) -> bytes:
    """Write a Part 10 file with a zeroed preamble and dicomgate's implementation identity."""
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
    else:  # same encoding: raw elements are written back as read (fast, byte-exact)
        pydicom.dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


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


def _is_deferred(ds: Dataset, tag: BaseTag) -> bool:
    """True for an element whose value pydicom has not read yet (``dcmread(defer_size=…)``)."""
    elem = ds.get_item(tag, keep_deferred=True)  # without keep_deferred it would read it
    return isinstance(elem, RawDataElement) and elem.value is None and bool(elem.length)


def write_copy(ds: Dataset, syntax: UID) -> bytes:
    """Write a copy of ``ds`` as it is (the caller's dataset and its file meta stay untouched)."""
    work = detached_copy(ds)
    work.file_meta = FileMetaDataset(getattr(ds, "file_meta", None) or {})
    if "TransferSyntaxUID" not in work.file_meta:
        work.file_meta.TransferSyntaxUID = syntax
    return write_part10(work)
