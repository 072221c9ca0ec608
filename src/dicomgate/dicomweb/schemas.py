"""The STOW-RS answer: a Store Instances Response Module (PS3.18 Annex I) in DICOM JSON.

Pure data: per-part statuses in, the HTTP status and the ``application/dicom+json`` body out
(PS3.18 Annex F: an object keyed by 8-hex-digit tags, each ``{"vr": …, "Value": [...]}``, with
``Value`` left out for an empty attribute).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from fastapi.responses import JSONResponse

from dicomgate.dicom.stamp import dicom_datetime

DICOM_JSON = "application/dicom+json"

# Attributes of the Store Instances Response Module (PS3.18 Table I.1-1).
RETRIEVE_URL = "00081190"  # UR, Type 2
FAILED_SOP_SEQUENCE = "00081198"  # SQ, 1C
REFERENCED_SOP_SEQUENCE = "00081199"  # SQ, 1C
REFERENCED_SOP_CLASS_UID = "00081150"  # UI, 1 (SOP Instance Reference Macro, PS3.3 T10-11)
REFERENCED_SOP_INSTANCE_UID = "00081155"  # UI, 1
WARNING_REASON = "00081196"  # US, 1C
FAILURE_REASON = "00081197"  # US, 1
ORIGINAL_ATTRIBUTES_SEQUENCE = "04000561"  # SQ, 3 (PS3.3 C.12.1)
MODIFIED_ATTRIBUTES_SEQUENCE = "04000550"  # SQ
ATTRIBUTE_MODIFICATION_DATETIME = "04000562"  # DT
MODIFYING_SYSTEM = "04000563"  # LO
SOURCE_OF_PREVIOUS_VALUES = "04000564"  # LO, Type 2
REASON_FOR_MODIFICATION = "04000565"  # CS
SOP_INSTANCE_UID = "00080018"  # UI


class FailureReason(IntEnum):
    """Failure Reason (0008,1197) values: PS3.18 Table I.2-2, plus one implementation code."""

    PROCESSING_FAILURE = 0x0110  # general failure (a worker crash, Orthanc refused the file)
    OUT_OF_RESOURCES = 0xA700  # A7xx: over the configured pixel cap
    CANNOT_UNDERSTAND = 0xC000  # Cxxx: not DICOM Part 10, corrupt, not an application/dicom part
    # The standard has no code for "not of the target study" (its 409 text names the case);
    # 0xC409 is the implementation-specific Cxxx code dcm4chee-arc uses for it.
    STUDY_MISMATCH = 0xC409


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

    @property
    def stored(self) -> bool:
        return self.failure is None


def _attr(vr: str, *values: Any) -> dict[str, Any]:
    """One DICOM JSON attribute; no values → present and empty (PS3.18 Annex F)."""
    return {"vr": vr, "Value": list(values)} if values else {"vr": vr}


def _reference(part: PartStatus) -> dict[str, Any]:
    return {
        REFERENCED_SOP_CLASS_UID: _attr("UI", *filter(None, [part.sop_class_uid])),
        REFERENCED_SOP_INSTANCE_UID: _attr("UI", *filter(None, [part.sop_instance_uid])),
    }


def _original_attributes(part: PartStatus) -> dict[str, Any]:
    """PS3.3 C.12.1 item: the SOP Instance UID as sent, replaced by dicomgate."""
    when = part.modified_at or datetime.datetime.now(datetime.UTC)
    return {
        ATTRIBUTE_MODIFICATION_DATETIME: _attr("DT", dicom_datetime(when)),
        MODIFYING_SYSTEM: _attr("LO", "dicomgate"),
        SOURCE_OF_PREVIOUS_VALUES: _attr("LO"),
        REASON_FOR_MODIFICATION: _attr("CS", "COERCE"),
        MODIFIED_ATTRIBUTES_SEQUENCE: _attr(
            "SQ", {SOP_INSTANCE_UID: _attr("UI", part.original_sop_instance_uid)}
        ),
    }


@dataclass
class StoreReport:
    """The outcome of one Store Transaction, part by part in the order sent."""

    parts: list[PartStatus] = field(default_factory=list)

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
        """The Store Instances Response Module (PS3.18 Table I.1-1) as a DICOM JSON object.

        Retrieve URL (Type 2) is present and empty, at the top and in every item: dicomgate has
        no Studies Retrieve Transaction (WADO-RS) to point at.
        """
        body: dict[str, Any] = {RETRIEVE_URL: _attr("UR")}
        failed = [
            {**_reference(p), FAILURE_REASON: _attr("US", int(p.failure))}
            for p in self.parts
            if p.failure is not None
        ]
        stored: list[dict[str, Any]] = []
        for part in self.parts:
            if not part.stored:
                continue
            item = {**_reference(part), RETRIEVE_URL: _attr("UR")}
            if part.warning is not None:
                item[WARNING_REASON] = _attr("US", int(part.warning))
            if part.original_sop_instance_uid:
                item[ORIGINAL_ATTRIBUTES_SEQUENCE] = _attr("SQ", _original_attributes(part))
            stored.append(item)
        if failed:
            body[FAILED_SOP_SEQUENCE] = _attr("SQ", *failed)
        if stored:
            body[REFERENCED_SOP_SEQUENCE] = _attr("SQ", *stored)
        return body


class DicomJsonResponse(JSONResponse):
    """JSON rendered with the ``application/dicom+json`` media type (PS3.18 Annex F)."""

    media_type = DICOM_JSON


# --- OpenAPI ---------------------------------------------------------------------------------
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
    return StoreReport(list(parts)).to_dicom_json()


_STORED = PartStatus(sop_class_uid=_EXAMPLE_CT, sop_instance_uid="1.2.3.4.5.6.1")
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
