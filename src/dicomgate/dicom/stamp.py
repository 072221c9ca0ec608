"""Coerce attributes and keep their previous values: PS3.3 C.12.1.1.9 Original Attributes.

Every value dicomgate replaces on ingest (patient demographics, study/series unification) is
recorded in one new item of the Original Attributes Sequence (0400,0561), so the file itself
says what it looked like before, when it changed, who changed it and why.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Protocol

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

MODIFYING_SYSTEM = "dicomgate"
REASON_COERCE = "COERCE"


class PatientIdentity(Protocol):
    """What stamping needs from a patient (``dicom.demographics.Demographics`` provides it)."""

    @property
    def patient_id(self) -> str: ...
    @property
    def dicom_name(self) -> str: ...
    @property
    def dicom_birth_date(self) -> str: ...
    @property
    def dicom_sex(self) -> str: ...


def patient_changes(patient: PatientIdentity) -> dict[str, str]:
    """PatientID, PatientName ``Family^Given``, BirthDate ``YYYYMMDD``, Sex ``M/F/O`` (C.7.1.1)."""
    return {
        "PatientID": patient.patient_id,
        "PatientName": patient.dicom_name,
        "PatientBirthDate": patient.dicom_birth_date,
        "PatientSex": patient.dicom_sex,
    }


def dicom_datetime(moment: datetime.datetime) -> str:
    """A DT value with UTC offset, e.g. ``20240102030405.000000+0000`` (PS3.5 §6.2)."""
    return moment.strftime("%Y%m%d%H%M%S.%f%z")


def _same(old: DataElement | None, new: object) -> bool:
    if old is None:
        return False
    value = old.value
    if value is None:
        value = ""
    return str(value) == str(new)


def coerce_attributes(
    ds: Dataset,
    changes: Mapping[str, object],
    *,
    now: datetime.datetime,
    modifying_system: str = MODIFYING_SYSTEM,
    reason: str = REASON_COERCE,
) -> list[str]:
    """Set each keyword to its new value; record replaced values in one Original Attributes item.

    PS3.3 C.12.1.1.9.2: the Modified Attributes Sequence (0400,0550) holds the previous values
    of the attributes that changed; an attribute that was absent is recorded with an empty value.
    Returns the keywords that actually changed (none: the dataset and its history are untouched).
    """
    modified = Dataset()
    changed: list[str] = []
    for keyword, value in changes.items():
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise KeyError(f"Unknown DICOM keyword {keyword!r}")
        old = ds.get(tag)
        if _same(old, value):
            continue
        if old is not None:
            modified.add(DataElement(old.tag, old.VR, old.value))
        else:
            modified.add(DataElement(tag, dictionary_VR(tag), None))
        setattr(ds, keyword, value)
        changed.append(keyword)
    if not changed:
        return changed
    item = Dataset()
    item.ModifiedAttributesSequence = Sequence([modified])
    item.AttributeModificationDateTime = dicom_datetime(now)
    item.ModifyingSystem = modifying_system
    item.SourceOfPreviousValues = ""  # Type 2: the previous values came from the file itself
    item.ReasonForTheAttributeModification = reason
    if "OriginalAttributesSequence" in ds:
        ds.OriginalAttributesSequence.append(item)
    else:
        ds.OriginalAttributesSequence = Sequence([item])
    return changed
