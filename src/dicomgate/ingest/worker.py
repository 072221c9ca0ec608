"""One worker call per uploaded file: read, check, stamp, unify, transcode (picklable)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, replace
from pathlib import Path

from dicomgate.codec.transcode import TranscodeOptions, TranscodeResult, transcode_dataset
from dicomgate.dicom.checks import require_study
from dicomgate.dicom.demographics import Demographics
from dicomgate.dicom.preamble import zero_preamble
from dicomgate.dicom.reading import read_part10
from dicomgate.dicom.stamp import coerce_attributes, patient_changes
from dicomgate.dicom.unify import SeriesAssignment, study_changes
from dicomgate.kit.disk import disk_full_is_507


@dataclass(frozen=True)
class IngestPlan:
    """What to do to one file before it is stored (sent to the worker process)."""

    demographics: Demographics | None
    assignment: SeriesAssignment | None
    options: TranscodeOptions
    now: datetime.datetime
    required_study_uid: str | None = None  # DICOMweb /studies/{uid}: refuse any other study


@dataclass(frozen=True)
class IngestOutcome:
    """What the worker made: the file to store (written to ``output``) and its identity.

    ``result.data`` is empty: the bytes travel through the file, not through the process pipe,
    so the web process never holds a large instance whole.
    """

    result: TranscodeResult
    output: str
    patient_id: str
    sop_class_uid: str = ""
    source_sop_instance_uid: str = ""  # as sent (lossy mode stores under a new one)
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    modality: str = ""  # Modality (0008,0060), for the storage statistics


def ingest_file(path: str, output: str, plan: IngestPlan) -> IngestOutcome:
    """Parse and validate a spooled upload, coerce its identity, transcode it, write ``output``.

    Raises NotDicom (415), InvalidDicom (400) or ImageTooLarge (413); a valid file the codec
    cannot improve comes back as a pass-through (``converted`` False, with ``reason``).
    """
    data = Path(path).read_bytes()
    original_size = len(data)
    ds = read_part10(data)
    del data
    if plan.required_study_uid is not None:
        require_study(ds, plan.required_study_uid)
    source_sop_instance_uid = str(ds.SOPInstanceUID)
    changes: dict[str, object] = {}
    if plan.demographics is not None:
        changes.update(patient_changes(plan.demographics))
    if plan.assignment is not None:
        changes.update(study_changes(ds, plan.assignment, now=plan.now))
    if changes:
        coerce_attributes(ds, changes, now=plan.now)
    zero_preamble(ds)
    result = transcode_dataset(ds, plan.options, original_size=original_size)
    with disk_full_is_507("writing the transcoded file"):
        Path(output).write_bytes(result.data)
    return IngestOutcome(
        result=replace(result, data=b""),
        output=output,
        patient_id=str(ds.get("PatientID", "") or ""),
        sop_class_uid=str(ds.SOPClassUID),
        source_sop_instance_uid=source_sop_instance_uid,
        study_instance_uid=str(ds.get("StudyInstanceUID", "") or ""),
        series_instance_uid=str(ds.get("SeriesInstanceUID", "") or ""),
        modality=str(ds.get("Modality", "") or ""),
    )
