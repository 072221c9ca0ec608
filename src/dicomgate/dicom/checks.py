"""Is it DICOM, is it whole, does it say what it is: the checks an upload passes first."""

from __future__ import annotations

import io
import re
import struct
import warnings

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileDataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.uid import UID

from dicomgate.errors import InvalidDicom, NotDicom, StudyMismatch

# What pydicom raises on malformed bytes (found by fuzzing the upload path; see
# tests/security): the upload's fault, so a 400, never a 500.
PARSE_ERRORS: tuple[type[Exception], ...] = (
    EOFError,
    OSError,
    ValueError,
    KeyError,
    TypeError,
    NotImplementedError,
    IndexError,
    AttributeError,
    OverflowError,
    struct.error,
    BytesLengthException,
)

UNDEFINED_LENGTH = 0xFFFFFFFF  # PS3.5 §7.1.1
# PS3.10 §7.1: 128-byte preamble, then the four bytes "DICM".
_PREFIX_OFFSET = 128
_PREFIX = b"DICM"


def looks_like_part10(data: bytes) -> bool:
    """True when the bytes carry the PS3.10 §7.1 ``DICM`` prefix after the preamble."""
    return data[_PREFIX_OFFSET : _PREFIX_OFFSET + 4] == _PREFIX


def read_part10(data: bytes) -> FileDataset:
    """Parse a whole DICOM Part 10 file, or raise NotDicom (415) / InvalidDicom (400).

    Every element is read (nothing deferred), so a truncated or corrupt file fails here and
    never reaches the codec or Orthanc.
    """
    if not data:
        raise NotDicom("The file is empty")
    if not looks_like_part10(data):
        raise NotDicom("The file is not DICOM (no 'DICM' prefix after the 128-byte preamble)")
    try:
        ds = _read_whole(data)
        # Convert every raw element now: a bad length or value fails inside this try.
        for _ in ds.iterall():
            pass
        for _ in ds.file_meta.iterall():
            pass
    except InvalidDicomError as exc:
        raise NotDicom(f"The file is not DICOM: {exc}") from None
    except RecursionError:
        raise InvalidDicom(
            f"The DICOM file nests sequences deeper than {MAX_SEQUENCE_DEPTH} levels"
        ) from None
    except PARSE_ERRORS as exc:
        raise InvalidDicom(f"The DICOM file is truncated or corrupt: {exc}") from None
    # Everything is read (nothing deferred), so the dataset no longer needs the buffer it was
    # parsed from; keeping it would keep the caller's whole file alive as a second copy (and
    # a deep copy of the dataset would copy it a third time).
    ds.buffer = None
    require_shallow_nesting(ds)
    require_file_meta(ds)
    require_sop_identity(ds)
    if "PixelData" in ds:
        require_whole_pixel_data(ds)
    return ds


def _read_whole(data: bytes) -> FileDataset:
    """``dcmread`` that refuses a file cut short instead of returning what it got.

    pydicom is lenient at the end of a file: an undefined-length value (encapsulated Pixel
    Data, a sequence) cut before its delimiter becomes a warning and an empty data set (which
    then looked like "no SOP Class UID"); a value shorter than its length, or an element header
    cut in two, is dropped or kept short without a word. Here each is a truncated file.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = pydicom.dcmread(io.BytesIO(data), force=False)
    for warning in caught:
        if "End of file reached" in str(warning.message):
            raise InvalidDicom(
                "The DICOM file is truncated: it ends inside a value that has no end marker "
                "yet (encapsulated Pixel Data or a sequence)"
            )
        warnings.warn_explicit(  # the rest as they would have been
            warning.message, warning.category, warning.filename, warning.lineno
        )
    _require_last_element_whole(ds, len(data))
    return ds


def _require_last_element_whole(ds: FileDataset, size: int) -> None:
    """The last element read must end exactly at the end of the file (PS3.5 §7.1: a value is
    as long as its header says). Only the last can be cut: truncation removes the tail."""
    if not ds:
        raise InvalidDicom("The DICOM file is truncated: it ends after its file meta")
    last = ds.get_item(max(ds.keys()))
    if not isinstance(last, RawDataElement) or last.length == UNDEFINED_LENGTH:
        return  # an undefined-length value was read to its delimiter (or it would warn)
    end = last.value_tell + last.length
    if end > size:
        raise InvalidDicom(
            f"The DICOM file is truncated: element {last.tag} needs {end - size:,} more bytes"
        )
    if end < size:
        raise InvalidDicom(
            f"The DICOM file is truncated: it ends inside the header of the element after "
            f"{last.tag} ({size - end} bytes left over)"
        )


MAX_SEQUENCE_DEPTH = 32


def require_shallow_nesting(ds: Dataset, *, limit: int = MAX_SEQUENCE_DEPTH) -> None:
    """Refuse sequences nested deeper than ``limit`` (real objects, SR trees included, stay far
    below; a hostile file nests thousands deep to exhaust the stack of every later reader)."""
    stack: list[tuple[Dataset, int]] = [(ds, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise InvalidDicom(f"The DICOM file nests sequences deeper than {limit} levels")
        for element in item:
            if element.VR == "SQ":
                stack.extend((child, depth + 1) for child in element.value)


def require_file_meta(ds: Dataset) -> None:
    """PS3.10 §7.1: the file meta must name the transfer syntax."""
    syntax = getattr(ds.file_meta, "TransferSyntaxUID", None)
    if not syntax:
        raise InvalidDicom("The DICOM file has no Transfer Syntax UID in its file meta")


_UID_CHARS = re.compile(r"[0-9.]{1,64}")  # fullmatch only ("$" allows a final "\n")


def _is_valid_uid(value: str) -> bool:
    # Lenient on purpose: real scanners write leading zeros (not conformant, still the image's
    # identity); only what cannot be a UID at all is refused.
    return bool(_UID_CHARS.fullmatch(value.strip("\x00 ")))


def require_sop_identity(ds: Dataset) -> None:
    """Type 1 identity: SOP Class/Instance UIDs (PS3.3 C.12.1), Study Instance UID (C.7.2.1) and
    Series Instance UID (C.7.3.1); Orthanc files every instance by the last three."""
    for keyword, tag in (
        ("SOPClassUID", "(0008,0016)"),
        ("SOPInstanceUID", "(0008,0018)"),
        ("StudyInstanceUID", "(0020,000D)"),
        ("SeriesInstanceUID", "(0020,000E)"),
    ):
        value = ds.get(keyword)
        if value is None or str(value) == "":
            raise InvalidDicom(f"The DICOM file has no {keyword} {tag}")
        if not _is_valid_uid(str(value)):
            raise InvalidDicom(f"The DICOM file's {keyword} {tag} is not a UID: {str(value)!r}")


def require_whole_pixel_data(ds: Dataset) -> None:
    """Native Pixel Data must hold at least Rows×Columns×Samples×Frames×BitsAllocated bits.

    PS3.5 §8.1.1: a shorter value means the file was cut off.
    """
    syntax = UID(ds.file_meta.TransferSyntaxUID)
    if not syntax.is_transfer_syntax or syntax.is_compressed:
        # Encapsulated frames are checked by the codec when it decodes them; a syntax pydicom
        # does not know cannot be measured here (the codec passes it through or refuses it).
        return
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel", 1))
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        bits = int(ds.BitsAllocated)
    except (AttributeError, TypeError, ValueError) as exc:
        raise InvalidDicom(f"The DICOM file's image description is incomplete: {exc}") from None
    expected = (rows * cols * samples * frames * bits + 7) // 8
    actual = len(ds.PixelData)
    if actual < expected:
        raise InvalidDicom(
            f"The DICOM file is truncated: Pixel Data holds {actual} bytes, "
            f"{rows}×{cols}×{samples}×{frames} at {bits} bits needs {expected}"
        )


def require_study(ds: Dataset, study_instance_uid: str) -> None:
    """Refuse an instance of another study (raises StudyMismatch, 409).

    PS3.18 §10.5.1: a Store Transaction to ``/studies/{study}`` stores only instances whose
    Study Instance UID (0020,000D) is that study's.
    """
    actual = str(ds.get("StudyInstanceUID", "")).strip("\x00 ")
    if actual != study_instance_uid:
        raise StudyMismatch(
            f"The instance belongs to study {actual or '(none)'}, not to the study "
            f"{study_instance_uid} of the request URL; it was not stored"
        )
