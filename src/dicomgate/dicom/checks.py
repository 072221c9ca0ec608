"""Is it whole, does it say what it is: the checks a parsed upload passes first.

Each check cites the part of the standard it enforces and raises InvalidDicom (400) or
StudyMismatch (409); :func:`dicomgate.dicom.reading.read_part10` runs them in order.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.uid import UID

from dicomgate.dicom.image import ImageGeometry, check_native_pixel_data
from dicomgate.dicom.uids import is_uid
from dicomgate.errors import InvalidDicom, StudyMismatch

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


def _is_valid_uid(value: str) -> bool:
    return is_uid(value.strip("\x00 "))


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


def require_sop_uids(ds: Dataset) -> str:
    """SOP Class and Instance UID are mandatory in every composite instance (PS3.3 C.12.1);
    the codec needs no more. Returns the SOP Instance UID."""
    sop_class = ds.get("SOPClassUID")
    sop_uid = ds.get("SOPInstanceUID")
    if not sop_class or not sop_uid:
        missing = "SOP Class UID" if not sop_class else "SOP Instance UID"
        raise InvalidDicom(f"The DICOM file has no {missing}")
    return str(sop_uid)


def require_whole_pixel_data(ds: Dataset) -> None:
    """Native Pixel Data holds what Rows×Columns×Samples×Frames×Bits Allocated declare.

    PS3.5 §8.1.1: a shorter value means the file was cut off (see
    :func:`dicomgate.dicom.image.check_native_pixel_data`).
    """
    syntax = UID(ds.file_meta.TransferSyntaxUID)
    if not syntax.is_transfer_syntax or syntax.is_compressed:
        # Encapsulated frames are checked by the codec when it decodes them; a syntax pydicom
        # does not know cannot be measured here (the codec passes it through or refuses it).
        return
    check_native_pixel_data(ds, ImageGeometry.of(ds))


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
