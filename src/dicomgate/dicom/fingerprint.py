"""What "the same instance" means: a fingerprint of everything dicomgate does not write itself.

Two files with one SOP Instance UID hold the same instance when they have

- the same value for every data element except those dicomgate writes or re-encodes itself:
  the file meta group (0002) and group lengths, the patient demographics it stamps (Patient's
  Name, Birth Date, Sex; not the Patient ID, which the identity rule checks on its own), what a
  folder upload assigns besides the UIDs (Study/Series Description, Series Number, Study
  Date/Time), the Original Attributes Sequence (its record of those edits, dated), and how the
  pixels are encoded (Pixel Data's bytes, Planar Configuration, the extended offset table;
  Photometric Interpretation ``YBR_RCT``/``YBR_ICT``, which a JPEG 2000 colour transform
  writes for ``RGB``, counts as ``RGB``; PS3.5 §8.2.4);
- the same pixels: the CRC32 of every decoded frame in canonical little-endian layout (the
  transcoder's own ``frame_crc32``, so a file stored as HTJ2K equals the uncompressed file it
  came from), or, where the pixels cannot be decoded, the SHA-256 of the Pixel Data bytes.

The fingerprint is two SHA-256 digests, ``<attributes>:<pixels>`` (so a conflict can say
which differs), the attributes written as explicit VR little endian (PS3.5 §A.2), so the
encoding of the file they came from does not matter.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from pydicom.charset import default_encoding
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.tag import BaseTag
from pydicom.valuerep import AMBIGUOUS_VR

from dicomgate.dicom import canonical

# Attributes dicomgate writes itself on ingest (dicom/stamp.py, dicom/unify.py, codec/).
NOT_COMPARED = (
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "StudyDescription",
    "SeriesDescription",
    "SeriesNumber",
    "StudyDate",
    "StudyTime",
    "OriginalAttributesSequence",
    "PixelData",
    "PlanarConfiguration",
    "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths",
    "DataSetTrailingPadding",
)
_NOT_COMPARED_TAGS = frozenset(tag_for_keyword(k) for k in NOT_COMPARED)
_PHOTOMETRIC = 0x00280004
_SPECIFIC_CHARACTER_SET = 0x00080005
# Photometric Interpretations that only say how JPEG 2000 encoded RGB pixels (PS3.5 §8.2.4).
_ENCODING_PHOTOMETRIC = {"YBR_RCT": "RGB", "YBR_ICT": "RGB"}


def compared_attributes(ds: Dataset, *, fast: bool = True) -> bytes:
    """The compared data elements of ``ds``, written as explicit VR little endian.

    ``fast``: for a dataset read as explicit VR little endian (every transcoded file), the
    compared elements are written without pydicom's pass that re-derives ambiguous VRs over the
    whole dataset (none is ambiguous there: each element carries its VR, and one that does not
    takes the full path), each unchanged value once per process (:mod:`.canonical`); the bytes
    are the same (``fast=False`` is the reference the tests compare with).
    """
    if fast:
        found = _compared_cached(ds)
        if found is not None:
            return found
    compared: dict[BaseTag, DataElement | RawDataElement] = {
        tag: ds[tag]
        for tag in list(ds.keys())
        if not (tag in _NOT_COMPARED_TAGS or tag.element == 0 or tag.group == 0x0002)
    }
    kept = Dataset(compared) if fast else Dataset()
    if not fast:
        for elem in compared.values():
            kept[elem.tag] = elem  # what Dataset.add does
    photometric = str(kept.get("PhotometricInterpretation", "")).strip()
    if photometric in _ENCODING_PHOTOMETRIC:
        kept.PhotometricInterpretation = _ENCODING_PHOTOMETRIC[photometric]
    if fast and not _as_written(ds, kept):
        return compared_attributes(ds, fast=False)
    out = DicomBytesIO()
    out.is_little_endian = True
    out.is_implicit_VR = False
    write_dataset(out, kept)
    return out.getvalue()


def _compared_cached(ds: Dataset) -> bytes | None:
    """The fast path's bytes, element by element, each raw value's written form taken from
    :mod:`.canonical` (the same ``write_data_element`` output, cached); None wherever the fast
    path does not apply or anything fails (the caller then takes it as before)."""
    if getattr(ds, "original_encoding", None) != (False, True):
        return None
    try:
        # What write_dataset(kept) reads: kept holds ds's Specific Character Set (compared).
        charset = Dataset()
        if _SPECIFIC_CHARACTER_SET in ds:
            charset[_SPECIFIC_CHARACTER_SET] = ds[_SPECIFIC_CHARACTER_SET]
        if getattr(ds, "original_character_set", None) != charset._character_set:
            return None
        values = canonical.context(
            read_charset=ds.original_character_set or ds._character_set,
            write_charset=charset.get("SpecificCharacterSet", default_encoding),
        )
        if values is None:
            return None
        out = []
        for tag in sorted(ds.keys()):
            if tag in _NOT_COMPARED_TAGS or tag.element == 0 or tag.group == 0x0002:
                continue
            elem = ds.get_item(tag)
            if (
                isinstance(elem, RawDataElement)
                and tag != _PHOTOMETRIC
                and canonical.cacheable(elem)
            ):
                data = values.written(elem)
            else:
                converted = ds[tag]
                if converted.VR in AMBIGUOUS_VR:
                    return None
                if tag == _PHOTOMETRIC and str(converted.value).strip() in _ENCODING_PHOTOMETRIC:
                    converted = copy.copy(converted)
                    converted.value = _ENCODING_PHOTOMETRIC[str(converted.value).strip()]
                data = canonical.write(converted, write_charset=values.write_charset)
            if data is None:
                return None
            out.append(data)
    except Exception:  # the full path raises it again, as before
        return None
    return b"".join(out)


def _as_written(ds: Dataset, kept: Dataset) -> bool:
    """Mark ``kept`` as read in explicit VR little endian, if ``ds`` was, with no ambiguous VR
    among its elements: then writing it re-encodes nothing wholesale. False otherwise."""
    if getattr(ds, "original_encoding", None) != (False, True):
        return False
    if any(elem.VR in AMBIGUOUS_VR for elem in kept.elements()):
        return False
    charset = kept._character_set
    if getattr(ds, "original_character_set", None) != charset:
        return False
    kept.set_original_encoding(False, True, charset)
    return True


def pixel_signature(ds: Dataset, frame_crc32: Sequence[int]) -> str:
    """The decoded frames' CRC32s, else the SHA-256 of the Pixel Data bytes, else "none"."""
    if frame_crc32:
        return "crc32:" + ",".join(f"{crc:08x}" for crc in frame_crc32)
    if "PixelData" in ds:
        return "sha256:" + hashlib.sha256(bytes(ds.PixelData)).hexdigest()
    return "none"


def content_fingerprint(ds: Dataset, frame_crc32: Sequence[int]) -> str:
    """``<attributes>:<pixels>``: the SHA-256 (hex) of the compared attributes and of the pixel
    signature of one instance."""
    attributes = hashlib.sha256(compared_attributes(ds)).hexdigest()
    pixels = hashlib.sha256(pixel_signature(ds, frame_crc32).encode("ascii")).hexdigest()
    return f"{attributes}:{pixels}"


def differences(fingerprint: str, other: str) -> list[str]:
    """What differs between two fingerprints, in words ("attributes", "pixel data")."""
    mine, theirs = fingerprint.partition(":"), other.partition(":")
    found = []
    if mine[0] != theirs[0]:
        found.append("attributes")
    if mine[2] != theirs[2]:
        found.append("pixel data")
    return found


def _text(ds: Dataset, keyword: str) -> str:
    return str(ds.get(keyword, "") or "").strip()


@dataclass(frozen=True)
class InstanceIdentity:
    """Who and where an instance is, and its content fingerprint (picklable: worker → web)."""

    sop_instance_uid: str
    sop_class_uid: str
    patient_id: str
    study_instance_uid: str
    series_instance_uid: str
    fingerprint: str


def instance_identity(ds: Dataset, frame_crc32: Sequence[int]) -> InstanceIdentity:
    """The identity of ``ds`` as it will be (or is) stored."""
    return InstanceIdentity(
        sop_instance_uid=_text(ds, "SOPInstanceUID"),
        sop_class_uid=_text(ds, "SOPClassUID"),
        patient_id=_text(ds, "PatientID"),
        study_instance_uid=_text(ds, "StudyInstanceUID"),
        series_instance_uid=_text(ds, "SeriesInstanceUID"),
        fingerprint=content_fingerprint(ds, frame_crc32),
    )
