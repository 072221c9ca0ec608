"""Is it whole, does it say what it is: the checks a parsed upload passes first.

Each check cites the part of the standard it enforces and raises InvalidDicom (400) or
StudyMismatch (409); :func:`dicomgate.dicom.reading.read_part10` runs them in order.
"""

from __future__ import annotations

import logging

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.uid import UID

from dicomgate.dicom.image import ImageGeometry, check_native_pixel_data
from dicomgate.dicom.uids import is_uid
from dicomgate.errors import InvalidDicom, StudyMismatch

log = logging.getLogger(__name__)

MAX_SEQUENCE_DEPTH = 32
# Raw VRs that converting may turn into a sequence: SQ itself, UN (pydicom replaces it by the
# dictionary's VR) and none at all (implicit VR: the dictionary's).
_MAY_BE_SEQUENCE = frozenset({"SQ", "UN", None})


def require_shallow_nesting(ds: Dataset, *, limit: int = MAX_SEQUENCE_DEPTH) -> None:
    """Refuse sequences nested deeper than ``limit`` (real objects, SR trees included, stay far
    below; a hostile file nests thousands deep to exhaust the stack of every later reader)."""
    stack: list[tuple[Dataset, int]] = [(ds, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise InvalidDicom(f"The DICOM file nests sequences deeper than {limit} levels")
        for tag in list(item.keys()):
            raw = item.get_item(tag)
            if isinstance(raw, RawDataElement) and raw.VR not in _MAY_BE_SEQUENCE:
                continue  # a value read with its own VR, not SQ, converts to no sequence
            element = item[tag]
            if element.VR == "SQ":
                stack.extend((child, depth + 1) for child in element.value)


def require_file_meta(ds: Dataset) -> None:
    """PS3.10 §7.1: the file meta must name the transfer syntax."""
    syntax = getattr(ds.file_meta, "TransferSyntaxUID", None)
    if not syntax:
        raise InvalidDicom("The DICOM file has no Transfer Syntax UID in its file meta")


# Type 1 identity of a composite instance: SOP Class/Instance UIDs (PS3.3 C.12.1), Study
# Instance UID (C.7.2.1), Series Instance UID (C.7.3.1). Orthanc files every instance by the last
# three; the codec needs only the first two (the others are checked when present).
SOP_UIDS = (("SOPClassUID", "(0008,0016)"), ("SOPInstanceUID", "(0008,0018)"))
STUDY_SERIES_UIDS = (("StudyInstanceUID", "(0020,000D)"), ("SeriesInstanceUID", "(0020,000E)"))
# PS3.10 §7.1 Table 7.1-1: the file meta's copies of the dataset's SOP Class and Instance UIDs.
FILE_META_UIDS = (
    ("MediaStorageSOPClassUID", "(0002,0002)", "SOPClassUID"),
    ("MediaStorageSOPInstanceUID", "(0002,0003)", "SOPInstanceUID"),
)


def _value(ds: Dataset, keyword: str) -> str | None:
    """The attribute's value without its padding (PS3.5 §9.1), None when absent or empty."""
    value = ds.get(keyword)
    text = "" if value is None else str(value).strip("\x00 ")
    return text or None


def _require_uid(ds: Dataset, keyword: str, tag: str, *, required: bool) -> str | None:
    """The value of a UID attribute, refused (InvalidDicom, naming it) unless it is a UID."""
    value = _value(ds, keyword)
    if value is None:
        if required:
            raise InvalidDicom(f"The DICOM file has no {keyword} {tag}")
        return None
    if not is_uid(value):
        raise InvalidDicom(f"The DICOM file's {keyword} {tag} is not a UID: {value!r}")
    return value


def require_sop_identity(ds: Dataset) -> None:
    """What an upload must say it is: SOP Class/Instance, Study and Series Instance UIDs, each
    present and a UID (PS3.5 §9.1), and valid file meta copies (:func:`require_file_meta_uids`)."""
    for keyword, tag in (*SOP_UIDS, *STUDY_SERIES_UIDS):
        _require_uid(ds, keyword, tag, required=True)
    require_file_meta_uids(ds)


def require_sop_uids(ds: Dataset) -> str:
    """What the codec needs of an instance's identity; returns the SOP Instance UID.

    SOP Class and Instance UID are mandatory in every composite instance (PS3.3 C.12.1); Study
    and Series Instance UIDs, and the file meta's copies, must be UIDs where present. A stored
    instance or a file on disk with an identity that is not a UID is refused, never rewritten.
    """
    for keyword, tag in SOP_UIDS:
        _require_uid(ds, keyword, tag, required=True)
    for keyword, tag in STUDY_SERIES_UIDS:
        _require_uid(ds, keyword, tag, required=False)
    require_file_meta_uids(ds)
    return _value(ds, "SOPInstanceUID") or ""


def require_file_meta_uids(ds: Dataset) -> None:
    """The file meta's Media Storage SOP Class/Instance UIDs must be UIDs where present.

    PS3.10 §7.1: they are the dataset's SOP Class/Instance UIDs. When both are UIDs but differ,
    the dataset's stand: they are what Orthanc indexes and every reader, DICOMweb and the
    identity checks use, and what C-STORE and STOW-RS carry (no file meta travels). dicomgate
    writes the file meta afresh from them whenever it writes a file (``dicom.part10``), so a
    stored file is consistent again; the difference is logged. An empty value counts as absent.
    """
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        return
    for keyword, tag, dataset_keyword in FILE_META_UIDS:
        value = _require_uid(meta, keyword, tag, required=False)
        own = _value(ds, dataset_keyword)
        if value is not None and own is not None and value != own:
            log.warning(
                "File meta %s %s %s differs from the dataset's %s %s %s: the dataset's is kept "
                "(PS3.10 §7.1)",
                keyword,
                tag,
                value,
                dataset_keyword,
                dict(SOP_UIDS)[dataset_keyword],
                own,
            )


def require_whole_pixel_data(ds: Dataset) -> None:
    """Native Pixel Data holds what Rows×Columns×Samples×Frames×Bits Allocated declare.

    PS3.5 §8.1.1: a shorter value means the file was cut off (see
    :func:`dicomgate.dicom.image.check_native_pixel_data`); a longer one is padding, which the
    transcoder keeps as it is.
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
