"""QIDO-RS request parsing (PS3.18 §8.3.4, §10.6.1): matching keys, includefield,
fuzzymatching, limit and offset; and the attribute tables of PS3.18 §10.6.3 and of what
Orthanc 1.10 indexes (its "main DICOM tags"), by level."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydicom.datadict import tag_for_keyword

from dicomgate.dicomweb.catalog import check_uid
from dicomgate.dicomweb.dicomjson import vr_of_tag
from dicomgate.errors import BadRequest

Level = Literal["Study", "Series", "Instance"]
RESERVED = frozenset({"includefield", "fuzzymatching", "limit", "offset", "accept"})
MAX_RESULTS = 1000
TEXT_VRS = frozenset({"AE", "AS", "CS", "LO", "LT", "SH", "ST", "UC", "UT"})
_DA = r"\d{8}"
_TM = r"\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?"
# PS3.4 C.2.2.2.5: a value or a range (either end open); DT ends may carry an offset.
RANGES = {
    "DA": re.compile(rf"^(?:{_DA}|(?:{_DA})?-(?:{_DA})?)$"),
    "TM": re.compile(rf"^(?:{_TM}|(?:{_TM})?-(?:{_TM})?)$"),
    "DT": re.compile(r"^[0-9.+\-]+$"),
}


def _tags(*keywords: str) -> tuple[int, ...]:
    return tuple(int(tag_for_keyword(k) or 0) for k in keywords)


# Orthanc 1.10's main DICOM tags (what /tools/find indexes), by level.
PATIENT_TAGS = _tags(
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "OtherPatientIDs"
)
STUDY_TAGS = _tags(
    "StudyDate", "StudyTime", "StudyID", "StudyDescription", "AccessionNumber",
    "StudyInstanceUID", "RequestedProcedureDescription", "InstitutionName",
    "RequestingPhysician", "ReferringPhysicianName", "ModalitiesInStudy",
)  # fmt: skip
SERIES_TAGS = _tags(
    "SeriesDate", "SeriesTime", "Modality", "Manufacturer", "StationName", "SeriesDescription",
    "BodyPartExamined", "SequenceName", "ProtocolName", "SeriesNumber", "CardiacNumberOfImages",
    "ImagesInAcquisition", "NumberOfTemporalPositions", "NumberOfSlices", "NumberOfTimeSlices",
    "SeriesInstanceUID", "SeriesType", "OperatorsName", "PerformedProcedureStepDescription",
    "AcquisitionDeviceProcessingDescription", "ContrastBolusAgent",
)  # fmt: skip
INSTANCE_TAGS = _tags(
    "InstanceCreationDate", "InstanceCreationTime", "AcquisitionNumber", "ImageIndex",
    "InstanceNumber", "NumberOfFrames", "TemporalPositionIdentifier", "SOPInstanceUID",
    "ImagePositionPatient", "ImageComments", "ImageOrientationPatient",
)  # fmt: skip
LEVEL_TAGS: dict[str, frozenset[int]] = {
    "Study": frozenset(PATIENT_TAGS + STUDY_TAGS),
    "Series": frozenset(SERIES_TAGS),
    "Instance": frozenset(INSTANCE_TAGS),
}
LOWER_LEVELS: dict[str, tuple[str, ...]] = {
    "Study": ("Series", "Instance"),
    "Series": ("Instance",),
    "Instance": (),
}
# Result attributes of PS3.18 Tables 10.6.3-3 (study), 10.6.3-4 (series), 10.6.3-5 (instance).
DEFAULTS: dict[str, tuple[int, ...]] = {
    "Study": _tags(
        "StudyDate", "StudyTime", "AccessionNumber", "InstanceAvailability", "ModalitiesInStudy",
        "ReferringPhysicianName", "TimezoneOffsetFromUTC", "RetrieveURL", "PatientName",
        "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyID",
        "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances", "StudyDescription",
    ),
    "Series": _tags(
        "Modality", "TimezoneOffsetFromUTC", "SeriesDescription", "RetrieveURL",
        "SeriesInstanceUID", "SeriesNumber", "NumberOfSeriesRelatedInstances",
        "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime",
        "StudyInstanceUID",
    ),
    "Instance": _tags(
        "SOPClassUID", "SOPInstanceUID", "InstanceAvailability", "TimezoneOffsetFromUTC",
        "RetrieveURL", "InstanceNumber", "Rows", "Columns", "BitsAllocated", "NumberOfFrames",
        "StudyInstanceUID", "SeriesInstanceUID",
    ),
}  # fmt: skip
(
    MODALITIES_IN_STUDY,
    STUDY_SERIES,
    STUDY_INSTANCES,
    SERIES_INSTANCES,
    RETRIEVE_URL,
    AVAILABILITY,
    STUDY_UID,
    SERIES_UID,
    SOP_UID,
    PATIENT_ID,
) = _tags(
    "ModalitiesInStudy", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances",
    "NumberOfSeriesRelatedInstances", "RetrieveURL", "InstanceAvailability", "StudyInstanceUID",
    "SeriesInstanceUID", "SOPInstanceUID", "PatientID",
)  # fmt: skip


@dataclass(frozen=True)
class Search:
    """A parsed QIDO-RS request."""

    level: Level
    filters: dict[int, str]
    include: frozenset[int] = frozenset()
    include_all: bool = False
    fuzzy: bool = False
    limit: int = MAX_RESULTS
    offset: int = 0
    study_uid: str | None = None
    series_uid: str | None = None

    def attributes(self) -> frozenset[int]:
        """What each result carries (besides everything, with includefield=all)."""
        out = set(DEFAULTS[self.level]) | self.include | set(self.filters)
        if self.level != "Study" and self.study_uid is None:
            out |= set(DEFAULTS["Study"])
        if self.level == "Instance" and self.series_uid is None:
            out |= set(DEFAULTS["Series"])
        return frozenset(out)


def parse_attribute(name: str) -> int:
    """A keyword or an 8-hex-digit tag (PS3.18 §8.3.4.1); sequences and unknowns are a 400."""
    text = name.strip()
    if "." in text:
        raise BadRequest(f"Matching inside sequences ({text[:80]}) is not supported")
    if len(text) == 8 and all(c in "0123456789abcdefABCDEF" for c in text):
        return int(text, 16)
    tag = tag_for_keyword(text)
    if tag is None:
        raise BadRequest(f"{text[:80]!r} is neither a DICOM keyword nor a tag (8 hex digits)")
    return int(tag)


def _uint(name: str, value: str, *, minimum: int) -> int:
    if not value.strip().isdigit() or int(value) < minimum:
        raise BadRequest(f"{name} must be an integer ≥ {minimum}")
    return int(value)


def _filter_value(tag: int, value: str) -> str:
    if len(value) > 1024:
        raise BadRequest(f"The value for {tag:08X} is too long")
    vr = vr_of_tag(tag)
    if vr == "UI":
        uids = [u.strip() for u in re.split(r"[,\\]", value) if u.strip()]
        return "\\".join(check_uid(u, "matching") for u in uids)
    if vr in RANGES and value and (value == "-" or not RANGES[vr].match(value)):
        raise BadRequest(f"{value[:40]!r} is not a {vr} value or range (PS3.4 C.2.2.2.5)")
    return value


def parse_search(
    items: Sequence[tuple[str, str]],
    *,
    level: Level,
    study_uid: str | None = None,
    series_uid: str | None = None,
) -> Search:
    """The query parameters of a QIDO-RS request; every malformed one is a 400."""
    filters: dict[int, str] = {}
    include: set[int] = set()
    include_all = fuzzy = False
    limit, offset = MAX_RESULTS, 0
    for key, value in items:
        if key == "includefield":
            for name in value.split(","):
                if name.strip() == "all":
                    include_all = True
                elif name.strip():
                    include.add(parse_attribute(name))
        elif key == "fuzzymatching":
            if value not in ("true", "false"):
                raise BadRequest("fuzzymatching must be true or false")
            fuzzy = value == "true"
        elif key == "limit":
            limit = min(_uint("limit", value, minimum=1), MAX_RESULTS)
        elif key == "offset":
            offset = _uint("offset", value, minimum=0)
        elif key not in RESERVED:
            tag = parse_attribute(key)
            if tag in filters:
                raise BadRequest(f"{key} is given twice")
            lower = [lv for lv in LOWER_LEVELS[level] if tag in LEVEL_TAGS[lv]]
            if lower or (tag == MODALITIES_IN_STUDY and level != "Study"):
                raise BadRequest(
                    f"{key} is a {lower[0].lower() if lower else 'study'}-level attribute: it "
                    f"cannot be matched in a {level.lower()} search"
                )
            filters[tag] = _filter_value(tag, value)
    if study_uid is not None:
        filters[STUDY_UID] = study_uid
    if series_uid is not None:
        filters[SERIES_UID] = series_uid
    return Search(
        level=level,
        filters=filters,
        include=frozenset(include),
        include_all=include_all,
        fuzzy=fuzzy,
        limit=limit,
        offset=offset,
        study_uid=study_uid,
        series_uid=series_uid,
    )
