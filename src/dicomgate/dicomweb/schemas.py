"""The STOW-RS answer: a Store Instances Response Module (PS3.18 Annex I) in DICOM JSON.

Pure data: per-part statuses in, the HTTP status and the ``application/dicom+json`` body out
(PS3.18 Annex F, written by pydicom's ``Dataset.to_json_dict``).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from fastapi.responses import JSONResponse
from pydicom.dataset import Dataset

from dicomgate.dicom.stamp import dicom_datetime
from dicomgate.kit.clock import utcnow

DICOM_JSON = "application/dicom+json"


class FailureReason(IntEnum):
    """Failure Reason (0008,1197) values: PS3.18 Table I.2-2, plus one implementation code."""

    PROCESSING_FAILURE = 0x0110  # general failure (a worker crash, Orthanc refused the file)
    OUT_OF_RESOURCES = 0xA700  # A7xx: over the configured pixel cap
    CANNOT_UNDERSTAND = 0xC000  # Cxxx: not DICOM Part 10, corrupt, not an application/dicom part
    # The standard has no code for "not of the target study" (its 409 text names the case);
    # 0xC409 is the implementation-specific Cxxx code dcm4chee-arc uses for it.
    STUDY_MISMATCH = 0xC409
    # One SOP Instance UID, one patient (SPEC: Identity). Already stored under another Patient
    # ID: dcm4chee-arc's "conflicting Patient ID not accepted" (0xA778).
    PATIENT_CONFLICT = 0xA778
    # Already stored with other content, in another study/series, or being stored right now by
    # another upload: "Duplicate SOP Instance" (0x0111, PS3.7 Annex C).
    DUPLICATE_INSTANCE = 0x0111


class WarningReason(IntEnum):
    """Warning Reason (0008,1196) values: PS3.18 Table I.2-1."""

    COERCION = 0xB000  # data elements modified: lossy mode gives the instance a new UID


@dataclass(frozen=True)
class PartStatus:
    """What became of one part of the request, in the words of the response module.

    ``sop_instance_uid`` is the UID of the stored instance: the sent one, except in lossy mode,
    where ``original_sop_instance_uid`` keeps the sent one. UIDs dicomgate could not read from a
    refused part are "".
    """

    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    failure: FailureReason | None = None
    warning: WarningReason | None = None
    original_sop_instance_uid: str | None = None
    modified_at: datetime.datetime | None = None
    study_instance_uid: str = ""
    series_instance_uid: str = ""

    @property
    def stored(self) -> bool:
        return self.failure is None


def _reference(part: PartStatus) -> Dataset:
    """An SOP Instance Reference Macro item (PS3.3 Table 10-11); UIDs not read stay empty."""
    item = Dataset()
    item.ReferencedSOPClassUID = part.sop_class_uid or None
    item.ReferencedSOPInstanceUID = part.sop_instance_uid or None
    return item


def _original_attributes(part: PartStatus) -> Dataset:
    """PS3.3 C.12.1 item: the SOP Instance UID as sent, replaced by dicomgate."""
    modified = Dataset()
    modified.SOPInstanceUID = part.original_sop_instance_uid
    item = Dataset()
    item.AttributeModificationDateTime = dicom_datetime(part.modified_at or utcnow())
    item.ModifyingSystem = "dicomgate"
    item.SourceOfPreviousValues = None
    item.ReasonForTheAttributeModification = "COERCE"
    item.ModifiedAttributesSequence = [modified]
    return item


@dataclass
class StoreReport:
    """The outcome of one Store Transaction, part by part in the order sent."""

    parts: list[PartStatus] = field(default_factory=list)
    service_url: str = ""  # the DICOMweb base URL the Retrieve URLs start with

    def study_url(self, study_instance_uid: str) -> str:
        return f"{self.service_url}/studies/{study_instance_uid}" if self.service_url else ""

    def instance_url(self, part: PartStatus) -> str:
        """WADO-RS URL of a stored instance (PS3.18 §10.4.1.1.1)."""
        if not (self.service_url and part.study_instance_uid and part.series_instance_uid):
            return ""
        return (
            f"{self.study_url(part.study_instance_uid)}/series/{part.series_instance_uid}"
            f"/instances/{part.sop_instance_uid}"
        )

    @property
    def status_code(self) -> int:
        """PS3.18 Table 10.5.3-1: 200 all stored; 202 some failed or carry a warning; 409 none
        stored (the request itself was well formed: malformed ones are refused before, 400)."""
        if not any(p.stored for p in self.parts):
            return 409
        if any(p.failure is not None or p.warning is not None for p in self.parts):
            return 202
        return 200

    def to_dicom_json(self) -> dict[str, Any]:
        """The Store Instances Response Module (PS3.18 Table I.1-1) as a DICOM JSON object
        (pydicom's encoder: VRs from the data dictionary, empty attributes without ``Value``).

        Retrieve URL (Type 2): every stored item names its instance's WADO-RS URL; the top
        level names the study when the stored instances are all of one study, else is empty.
        """
        body = Dataset()
        studies = {p.study_instance_uid for p in self.parts if p.stored}
        study_url = self.study_url(next(iter(studies))) if len(studies) == 1 else ""
        body.RetrieveURL = study_url or None
        failed = []
        stored = []
        for part in self.parts:
            item = _reference(part)
            if part.failure is not None:
                item.FailureReason = int(part.failure)
                failed.append(item)
                continue
            item.RetrieveURL = self.instance_url(part) or None
            if part.warning is not None:
                item.WarningReason = int(part.warning)
            if part.original_sop_instance_uid:
                item.OriginalAttributesSequence = [_original_attributes(part)]
            stored.append(item)
        if failed:
            body.FailedSOPSequence = failed
        if stored:
            body.ReferencedSOPSequence = stored
        return body.to_json_dict()


class DicomJsonResponse(JSONResponse):
    """JSON rendered with the ``application/dicom+json`` media type (PS3.18 Annex F)."""

    media_type = DICOM_JSON


# --- OpenAPI ---------------------------------------------------------------------------------
DICOM_JSON_OBJECT: dict[str, Any] = {
    "type": "object",
    "description": (
        "A DICOM JSON object (PS3.18 Annex F): keys are tags as 8 hex digits, values "
        "{vr, Value} or {vr, BulkDataURI} or {vr, InlineBinary}."
    ),
    "additionalProperties": {
        "type": "object",
        "properties": {
            "vr": {"type": "string"},
            "Value": {"type": "array", "items": {}},
            "BulkDataURI": {"type": "string"},
            "InlineBinary": {"type": "string"},
        },
        "required": ["vr"],
    },
}
_EXAMPLE_CT = "1.2.840.10008.5.1.4.1.1.2"
DICOM_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        "A Store Instances Response Module (PS3.18 Table I.1-1) in DICOM JSON (PS3.18 Annex F): "
        "keys are tags as 8 hex digits, values {vr, Value}."
    ),
    "additionalProperties": {
        "type": "object",
        "properties": {"vr": {"type": "string"}, "Value": {"type": "array", "items": {}}},
        "required": ["vr"],
    },
}


def _example(*parts: PartStatus) -> dict[str, Any]:
    report = StoreReport(list(parts), service_url="https://dicomgate.example.org/dicomweb")
    return report.to_dicom_json()


_STORED = PartStatus(
    sop_class_uid=_EXAMPLE_CT,
    sop_instance_uid="1.2.3.4.5.6.1",
    study_instance_uid="1.2.3.4",
    series_instance_uid="1.2.3.4.5",
)
_MISMATCH = PartStatus(
    sop_class_uid=_EXAMPLE_CT,
    sop_instance_uid="1.2.3.4.5.6.2",
    failure=FailureReason.STUDY_MISMATCH,
)
_NOT_DICOM = PartStatus(failure=FailureReason.CANNOT_UNDERSTAND)


def _content(description: str, *parts: PartStatus) -> dict[str, Any]:
    return {
        "description": description,
        "content": {DICOM_JSON: {"schema": DICOM_JSON_SCHEMA, "example": _example(*parts)}},
    }


STORE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _content("Every instance was stored (Referenced SOP Sequence).", _STORED),
    202: _content(
        "Some instances were stored; the others are in the Failed SOP Sequence with their "
        "Failure Reason, or were stored with a Warning Reason.",
        _STORED,
        _NOT_DICOM,
    ),
    409: _content(
        "No instance was stored (Failed SOP Sequence says why, part by part).", _MISMATCH
    ),
}
