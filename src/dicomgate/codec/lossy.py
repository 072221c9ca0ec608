"""Lossy mode (``DICOMGATE_LOSSY_QUALITY``): the quantization step, and flagging the result.

A lossy derivative is a new instance (PS3.3 §C.7.6.1.1.5): Lossy Image Compression "01", the
ratio and method appended to any earlier ones, Image Type DERIVED, a new SOP Instance UID.
"""

from __future__ import annotations

import uuid

from pydicom.dataset import Dataset

from dicomgate.dicom.uids import derived_uid

# Fixed forever: changing it changes every lossy derivative's UID (a retry would duplicate).
LOSSY_UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:dicomgate:lossy-derivative")
# PS3.3 §C.7.6.1.1.5.1: the method of an HTJ2K (JPEG 2000 Part 15) lossy compression.
LOSSY_METHOD = "ISO_15444_15"


def lossy_step(quality: float) -> float:
    """Map a quality in (0, 100] (100 = best) to an irreversible quantization step."""
    q = min(max(float(quality), 0.1), 100.0)
    return 0.0005 + (100.0 - q) / 100.0 * 0.05


def lossy_sop_instance_uid(source_uid: str, transfer_syntax: str, step: float) -> str:
    """The new SOP Instance UID of a lossy derivative: new (PS3.3 C.7.6.1.1.5), but a pure
    function of the source instance and the encoding, so an upload retried in lossy mode stores
    the same instance again (Orthanc: ``AlreadyStored``) instead of a duplicate."""
    return derived_uid(LOSSY_UID_NAMESPACE, source_uid, transfer_syntax, repr(step))


def flag_lossy(
    ds: Dataset, raw_size: int, encoded_size: int, *, transfer_syntax: str, step: float
) -> None:
    """PS3.3 C.7.6.1.1.5: Lossy Image Compression, ratio and method; new SOP Instance UID."""
    ds.LossyImageCompression = "01"
    ratio = f"{raw_size / max(encoded_size, 1):.4g}"[:16]
    old_ratios = list(ds.get("LossyImageCompressionRatio") or [])
    old_methods = list(ds.get("LossyImageCompressionMethod") or [])
    ds.LossyImageCompressionRatio = [*map(str, old_ratios), ratio]
    ds.LossyImageCompressionMethod = [*map(str, old_methods), LOSSY_METHOD]
    image_type = list(ds.get("ImageType") or ["DERIVED", "SECONDARY"])
    image_type[0] = "DERIVED"
    ds.ImageType = image_type
    ds.SOPInstanceUID = lossy_sop_instance_uid(str(ds.SOPInstanceUID), transfer_syntax, step)
