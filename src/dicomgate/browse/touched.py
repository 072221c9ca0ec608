"""What a browse request touches, read from Orthanc's index for the audit trail.

The audit trail names patients and DICOM UIDs, which a browse route only knows as Orthanc IDs.
These reads are cheap (Orthanc answers them from its database, not from the files) and never
fail a request: a resource that cannot be read is not described, and the route itself then
answers as it would have. An instance's UIDs never change under its Orthanc ID (Orthanc derives
the ID from them), so they are cached.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

from dicomgate.audit.context import Touched
from dicomgate.browse.service import ORTHANC_ID
from dicomgate.errors import DicomgateError
from dicomgate.orthanc import OrthancClient
from dicomgate.orthanc_models import Level

_INSTANCES: OrderedDict[str, Touched] = OrderedDict()
_CACHED_INSTANCES = 50_000
# For each level, the levels below it whose UIDs a delete removes.
_BELOW: dict[Level, tuple[Level, ...]] = {
    "patients": ("studies", "series", "instances"),
    "studies": ("series", "instances"),
    "series": ("instances",),
    "instances": (),
}
_UID_TAG: dict[Level, str] = {
    "studies": "StudyInstanceUID",
    "series": "SeriesInstanceUID",
    "instances": "SOPInstanceUID",
}
_TOUCHED_KEY: dict[Level, str] = {
    "studies": "study_instance_uids",
    "series": "series_instance_uids",
    "instances": "sop_instance_uids",
}


def _tag(resource: dict[str, Any], key: str, tag: str) -> str:
    return str((resource.get(key) or {}).get(tag) or "")


async def instance(orthanc: OrthancClient, instance_id: str) -> Touched:
    """The patient, study, series and SOP Instance UID of one instance (cached)."""
    cached = _INSTANCES.get(instance_id)
    if cached is not None:
        _INSTANCES.move_to_end(instance_id)
        return cached
    if not ORTHANC_ID.match(instance_id):
        return Touched()
    try:
        found, series, study = await asyncio.gather(
            orthanc.resource("instances", instance_id),
            orthanc.parent("instances", instance_id, "series"),
            orthanc.parent("instances", instance_id, "studies"),
        )
    except DicomgateError:
        return Touched()
    touched = Touched(
        patient_ids=[_tag(study, "PatientMainDicomTags", "PatientID")],
        study_instance_uids=[_tag(study, "MainDicomTags", "StudyInstanceUID")],
        series_instance_uids=[_tag(series, "MainDicomTags", "SeriesInstanceUID")],
        sop_instance_uids=[_tag(found, "MainDicomTags", "SOPInstanceUID")],
        orthanc_ids=[
            str(study.get("ParentPatient") or ""),
            str(study.get("ID") or ""),
            str(series.get("ID") or ""),
            instance_id,
        ],
    )
    _INSTANCES[instance_id] = touched
    while len(_INSTANCES) > _CACHED_INSTANCES:
        _INSTANCES.popitem(last=False)
    return touched


async def subtree(
    orthanc: OrthancClient,
    level: Level,
    orthanc_id: str,
    *,
    below: tuple[Level, ...] | None = None,
) -> Touched:
    """A resource and the levels ``below`` it (default: all, what a delete of it removes)."""
    levels = _BELOW[level] if below is None else below
    if level == "instances":
        return await instance(orthanc, orthanc_id)
    if not ORTHANC_ID.match(orthanc_id):
        return Touched()
    try:
        top = await orthanc.resource(level, orthanc_id)
        if level == "patients":
            patient_id, patient_orthanc_id = _tag(top, "MainDicomTags", "PatientID"), orthanc_id
            study: dict[str, Any] | None = None
        else:
            study = (
                top if level == "studies" else await orthanc.parent(level, orthanc_id, "studies")
            )
            patient_id = _tag(study, "PatientMainDicomTags", "PatientID")
            patient_orthanc_id = str(study.get("ParentPatient") or "")
        children = await asyncio.gather(
            *(orthanc.children(level, orthanc_id, child) for child in levels)
        )
    except DicomgateError:
        return Touched()
    touched = Touched(patient_ids=[patient_id], orthanc_ids=[patient_orthanc_id])
    if study is not None:
        touched.study_instance_uids.append(_tag(study, "MainDicomTags", "StudyInstanceUID"))
        touched.orthanc_ids.append(str(study.get("ID") or ""))
    if level == "series":
        touched.series_instance_uids.append(_tag(top, "MainDicomTags", "SeriesInstanceUID"))
        touched.orthanc_ids.append(orthanc_id)
    for child_level, resources in zip(levels, children, strict=True):
        uids: list[str] = getattr(touched, _TOUCHED_KEY[child_level])
        for resource in resources:
            uids.append(_tag(resource, "MainDicomTags", _UID_TAG[child_level]))
            touched.orthanc_ids.append(str(resource.get("ID") or ""))
    return touched
