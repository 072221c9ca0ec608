"""The one place DICOM bytes become a dataset: every parse failure mapped to a domain error.

``read_part10`` is strict (uploads: a whole Part 10 file, every element read now, then the
checks of :mod:`dicomgate.dicom.checks`); ``read_dataset`` is lenient (the codec's own input:
a Part 10 file or a bare dataset, as stored files and the CLI's folders hold them).
"""

from __future__ import annotations

import io
import struct

import pydicom
from pydicom.dataset import FileDataset
from pydicom.errors import BytesLengthException, InvalidDicomError

from dicomgate.dicom.checks import (
    MAX_SEQUENCE_DEPTH,
    require_file_meta,
    require_shallow_nesting,
    require_sop_identity,
    require_whole_pixel_data,
)
from dicomgate.dicom.preamble import PREAMBLE_LENGTH, looks_like_part10
from dicomgate.errors import InvalidDicom, NotDicom

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
        ds = pydicom.dcmread(io.BytesIO(data), force=False)
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
