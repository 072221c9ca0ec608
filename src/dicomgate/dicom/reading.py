"""The one place DICOM bytes become a dataset: every parse failure mapped to a domain error.

``read_part10`` is strict (uploads: a whole Part 10 file, every element read now, then the
checks of :mod:`dicomgate.dicom.checks`); ``read_dataset`` is lenient (the codec's own input:
a Part 10 file or a bare dataset, as stored files and the CLI's folders hold them).
"""

from __future__ import annotations

import io
import struct
import warnings

import pydicom
from pydicom.charset import default_encoding
from pydicom.dataelem import RawDataElement
from pydicom.dataset import FileDataset
from pydicom.errors import BytesLengthException, InvalidDicomError

from dicomgate.dicom.canonical import cacheable, context
from dicomgate.dicom.checks import (
    MAX_SEQUENCE_DEPTH,
    require_file_meta,
    require_shallow_nesting,
    require_sop_identity,
    require_whole_pixel_data,
)
from dicomgate.dicom.part10 import read_as_explicit_little_endian
from dicomgate.dicom.preamble import PREAMBLE_LENGTH, looks_like_part10
from dicomgate.errors import InvalidDicom, NotDicom

UNDEFINED_LENGTH = 0xFFFFFFFF  # PS3.5 §7.1.1
PIXEL_DATA = 0x7FE00010
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


def read_part10(data: bytes, *, fast: bool = True) -> FileDataset:
    """Parse a whole DICOM Part 10 file, or raise NotDicom (415) / InvalidDicom (400).

    Every element is read (nothing deferred) and its value converted, so a truncated or
    corrupt file fails here and never reaches the codec or Orthanc. ``fast``: elements whose
    value writes back to exactly the bytes read stay raw (see :func:`_read_every_value`);
    ``fast=False`` converts every element in place (the reference the tests compare with).
    """
    if not data:
        raise NotDicom("The file is empty")
    if not looks_like_part10(data):
        raise NotDicom("The file is not DICOM (no 'DICM' prefix after the 128-byte preamble)")
    try:
        ds = _read_whole(data)
        # Every value read now: a bad length or value fails inside this try.
        if fast:
            _read_every_value(ds)
        else:
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


def _read_every_value(ds: FileDataset) -> None:
    """Convert every value of ``ds`` now, keeping raw the elements that write back unchanged.

    In a dataset read as explicit VR little endian, an element whose value converts (cached
    per process, :mod:`.canonical`) and writes back to exactly the bytes read stays raw: the
    fast writer (``part10.write_part10``) copies it, which is byte for byte what writing its
    converted value gives, and a later read of it converts it the same way again (so it cannot
    fail then). Every other element (sequences and their items, long, unknown or rewritten
    values, any other encoding) is converted in place.
    """
    values = None
    if read_as_explicit_little_endian(ds):
        values = context(
            read_charset=ds.original_character_set or ds._character_set,
            write_charset=ds.get("SpecificCharacterSet", default_encoding),
        )
    for tag in list(ds.keys()):
        elem = ds.get_item(tag)
        if (
            values is not None
            and isinstance(elem, RawDataElement)
            and cacheable(elem)
            and values.unchanged(elem)
        ):
            continue
        converted = ds[tag]
        if converted.VR == "SQ":
            for item in converted.value:
                for _ in item.iterall():
                    pass


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
    if last.tag == PIXEL_DATA:
        return  # native Pixel Data: require_whole_pixel_data says how much is missing
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


def read_dataset(data: bytes) -> FileDataset:
    """Parse DICOM bytes (Part 10, or a bare dataset), mapping failures to domain errors."""
    if len(data) < 8:
        raise NotDicom("The file is not DICOM (too short)")
    part10 = len(data) >= PREAMBLE_LENGTH + 4 and looks_like_part10(data)
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=not part10)
    except InvalidDicomError:
        raise NotDicom("The file is not DICOM (no 'DICM' marker)") from None
    except Exception as exc:  # pydicom raises many kinds on corrupt input
        if not part10:
            raise NotDicom("The file is not DICOM") from None
        raise InvalidDicom(f"The DICOM file is corrupt or truncated: {exc}") from None
    # A forced read of random bytes yields junk tags; a real dataset has SOP identity.
    if not part10 and "SOPClassUID" not in ds and "SOPInstanceUID" not in ds:
        raise NotDicom("The file is not DICOM")
    return ds
