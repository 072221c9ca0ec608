"""One worker call per uploaded file: read, check, stamp, unify, transcode (picklable)."""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass, replace
from io import BytesIO
from pathlib import Path

import pydicom

from dicomgate.codec.transcode import (
    TranscodeOptions,
    TranscodeResult,
    frame_crc32s,
    transcode_dataset,
)
from dicomgate.dicom.checks import require_study
from dicomgate.dicom.demographics import Demographics
from dicomgate.dicom.fingerprint import InstanceIdentity, instance_identity
from dicomgate.dicom.preamble import zero_preamble
from dicomgate.dicom.reading import read_part10
from dicomgate.dicom.stamp import coerce_attributes, patient_changes
from dicomgate.dicom.unify import SeriesAssignment, study_changes
from dicomgate.ingest.idempotency import instance_uid_for
from dicomgate.kit.disk import disk_full_is_507

DEFER_ABOVE_BYTES = 1024 * 1024


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
    """What the worker made: the file to store and its identity.

    Asked for inline (``ingest_file``'s ``inline_max``), a file that small comes back in
    ``result.data`` and ``output`` is "": one upload's bytes through the process pipe instead
    of a write, a read and a delete. Otherwise ``result.data`` is empty and the bytes are in
    the file ``output``, so the web process never holds a large instance (or a request's
    many) whole.
    """

    result: TranscodeResult
    output: str
    identity: InstanceIdentity  # of the file to store (patient, UIDs, content fingerprint)
    output_md5: str  # MD5 of the bytes to store (what Orthanc records of the stored file)
    source_sop_instance_uid: str = ""  # as sent (lossy mode and folder uploads mint new ones)
    modality: str = ""  # Modality (0008,0060), for the storage statistics

    @property
    def inline(self) -> bool:
        """The bytes to store are ``result.data`` (no output file was written)."""
        return not self.output

    @property
    def patient_id(self) -> str:
        return self.identity.patient_id

    @property
    def sop_class_uid(self) -> str:
        return self.identity.sop_class_uid

    @property
    def study_instance_uid(self) -> str:
        return self.identity.study_instance_uid

    @property
    def series_instance_uid(self) -> str:
        return self.identity.series_instance_uid


def ingest_file(path: str, output: str, plan: IngestPlan, *, inline_max: int = 0) -> IngestOutcome:
    """Parse and validate a spooled upload, coerce its identity, transcode it, write ``output``
    (or, when the result is at most ``inline_max`` bytes, return it inline: no file).

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
        # A new place is a new instance: a new SOP Instance UID, derived (retries repeat it).
        changes["SOPInstanceUID"] = instance_uid_for(
            series_uid=plan.assignment.series_instance_uid, source_uid=source_sop_instance_uid
        )
    if changes:
        coerce_attributes(ds, changes, now=plan.now)
    zero_preamble(ds)
    result = transcode_dataset(ds, plan.options, original_size=original_size)
    modality = str(ds.get("Modality", "") or "")
    del ds
    inline = len(result.data) <= inline_max
    if not inline:
        with disk_full_is_507("writing the transcoded file"):
            Path(output).write_bytes(result.data)
    # Lossless output has the source's pixels (verified): their CRCs are the stored pixels'.
    # A lossy derivative's pixels are its own: decode them, as a stored copy would be.
    lossy = result.converted and not result.verified
    crcs = frame_crc32s(result.data) if lossy else result.frame_crc32
    # The identity of exactly what is stored: the bytes just written, parsed again from memory
    # (large values, Pixel Data among them, only if the fingerprint needs them).
    identity = instance_identity(
        pydicom.dcmread(BytesIO(result.data), defer_size=DEFER_ABOVE_BYTES), crcs
    )
    output_md5 = hashlib.md5(result.data).hexdigest()  # here: no second read of the file
    if not inline:
        result = replace(result, data=b"")
    return IngestOutcome(
        result=result,
        output="" if inline else output,
        identity=identity,
        source_sop_instance_uid=source_sop_instance_uid,
        modality=modality,
        output_md5=output_md5,
    )
