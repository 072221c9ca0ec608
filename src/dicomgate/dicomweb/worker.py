"""Worker-pool task: the SOP identity of a part the ingest refused (for its Failed SOP item)."""

from __future__ import annotations

from dataclasses import dataclass

import pydicom

from dicomgate.dicom.uids import is_uid


@dataclass(frozen=True)
class SopIdentity:
    """SOP Class UID (0008,0016) and SOP Instance UID (0008,0018); "" where unreadable."""

    sop_class_uid: str = ""
    sop_instance_uid: str = ""


def _uid(value: object) -> str:
    """A UID read from a refused file, or "" when it is not one (never echoed back as is)."""
    text = str(value or "").strip("\x00 ")
    return text if is_uid(text) else ""


def read_sop_identity(path: str) -> SopIdentity:
    """Best effort: the SOP UIDs of a Part 10 file that failed ingest, from its header only.

    The file was already refused (not DICOM, corrupt, wrong study, …), so nothing here may
    raise: whatever cannot be read comes back empty. Pixel data is never read
    (``stop_before_pixels``), so a pixel bomb costs nothing.
    """
    try:
        ds = pydicom.dcmread(
            path,
            force=False,
            stop_before_pixels=True,
            specific_tags=["SOPClassUID", "SOPInstanceUID"],
        )
        meta = getattr(ds, "file_meta", None) or {}
        # The file meta repeats both (PS3.10 §7.1): the fallback when the data set lacks them.
        sop_class = ds.get("SOPClassUID") or meta.get("MediaStorageSOPClassUID")
        sop_instance = ds.get("SOPInstanceUID") or meta.get("MediaStorageSOPInstanceUID")
    except Exception:  # a refused file may break the parser in any way (see dicom/checks.py)
        return SopIdentity()
    return SopIdentity(sop_class_uid=_uid(sop_class), sop_instance_uid=_uid(sop_instance))
