"""What a conversion job covers (its selection of studies and instances) and what happened to
each instance."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from dicomgate.errors import BadRequest, NotFound
from dicomgate.orthanc import OrthancClient
from dicomgate.phi import Phi

SelectorKind = Literal["study", "patient", "all", "series"]


@dataclass(frozen=True)
class Selection:
    """Which studies a job converts: one study, one patient's, or all;
    or given series of one study (``value``: its StudyInstanceUID), optionally only some of
    their instances (a compression rule's job: see :func:`series_selection`)."""

    selector: SelectorKind
    value: str | None = None
    series: tuple[str, ...] = ()  # selector "series": Orthanc IDs of the series
    instances: tuple[str, ...] = ()  # and of their instances to convert (empty: all of them)

    def for_log(self) -> object:
        """``describe()`` for log lines: a patient selector's ID is PHI (redacted by default)."""
        if self.selector == "patient":
            return Phi(self.describe(), redacted="patient <phi redacted>")
        return self.describe()

    def describe(self) -> str:
        """A human phrase for logs and summaries."""
        if self.selector == "all":
            return "all studies"
        if self.selector == "series":
            count = f"{len(self.instances)} instances of " if self.instances else ""
            plural = "series" if len(self.series) == 1 else f"{len(self.series)} series"
            return f"{count}{plural} of study {self.value}"
        return f"{self.selector} {self.value}"

    def covers(self, ref: InstanceRef) -> bool:
        """True when an instance of a selected study is one this selection converts."""
        if self.selector != "series":
            return True
        if ref.series_id not in self.series:
            return False
        return not self.instances or ref.orthanc_id in self.instances


def make_selection(
    *,
    study: str | None = None,
    patient: str | None = None,
    all_studies: bool = False,
) -> Selection:
    """Validate the selectors (exactly one of study, patient, all)."""
    chosen = [s for s in (study is not None, patient is not None, all_studies) if s]
    if len(chosen) != 1:
        raise BadRequest("Choose exactly one of a study, a patient or all studies")
    if study is not None:
        return Selection("study", study.strip())
    if patient is not None:
        return Selection("patient", patient.strip())
    return Selection("all", None)


def series_selection(
    study_instance_uid: str, series_ids: Sequence[str], instance_ids: Sequence[str] = ()
) -> Selection:
    """Given series of one study (Orthanc IDs), optionally only some of their instances."""
    if not series_ids:
        raise BadRequest("A series selection needs at least one series")
    return Selection(
        "series",
        study_instance_uid,
        series=tuple(sorted(set(series_ids))),
        instances=tuple(sorted(set(instance_ids))),
    )


@dataclass(frozen=True)
class StudyRef:
    orthanc_id: str
    study_instance_uid: str
    patient_id: str = ""  # Orthanc ID of its patient


@dataclass(frozen=True)
class InstanceRef:
    orthanc_id: str
    sop_instance_uid: str
    study_instance_uid: str
    file_size: int
    series_id: str = ""  # Orthanc ID of its series (a dry run reads the tags per series)
    # Its other parents and how many instances its series had when the run listed the study:
    # a replacement deletes the instance first, which removes a series left empty (and its
    # study and patient when they become empty too), so a small series needs its parents' state
    # read before the delete. 0: not known (then treated as small).
    study_id: str = ""
    patient_id: str = ""
    series_size: int = 0
    modality: str = ""  # its series' Modality (0008,0060), for the storage statistics


Outcome = Literal["converted", "skipped", "failed", "planned"]


@dataclass(frozen=True)
class InstanceResult:
    """What happened to one instance."""

    ref: InstanceRef
    outcome: Outcome
    reason: str | None
    bytes_before: int
    bytes_after: int
    stored_transfer_syntax: str | None = None  # a converted instance's new syntax
    stored_file_uuid: str | None = None  # its new file's UUID, read with its verified bytes


async def select_studies(orthanc: OrthancClient, selection: Selection) -> list[StudyRef]:
    """The studies a selection covers, in a stable order (by StudyInstanceUID)."""
    if selection.selector in ("study", "series"):
        found = await orthanc.find("Study", {"StudyInstanceUID": selection.value or ""})
        studies = [s for s in found if isinstance(s, dict)]
        if not studies:
            raise NotFound(f"No study with StudyInstanceUID {selection.value}")
    elif selection.selector == "patient":
        patients = await orthanc.find("Patient", {"PatientID": selection.value or ""})
        if not patients:
            raise NotFound(f"No patient with PatientID {selection.value}")
        studies = []
        for patient in patients:
            studies.extend(await orthanc.children("patients", patient["ID"], "studies"))
    else:
        studies = await orthanc.list_expanded("studies")
    refs = [
        StudyRef(
            s["ID"],
            str(s.get("MainDicomTags", {}).get("StudyInstanceUID", "")),
            str(s.get("ParentPatient", "")),
        )
        for s in studies
    ]
    return sorted(refs, key=lambda r: (r.study_instance_uid, r.orthanc_id))


async def study_instances(orthanc: OrthancClient, study: StudyRef) -> list[InstanceRef]:
    """Every instance of a study, with its SOP Instance UID, stored size, parents and modality
    (two Orthanc calls: the study's instances, and its series for their modality)."""
    instances = await orthanc.children("studies", study.orthanc_id, "instances")
    series = await orthanc.children("studies", study.orthanc_id, "series")
    modalities = {
        str(s.get("ID", "")): str(s.get("MainDicomTags", {}).get("Modality", "") or "")
        for s in series
    }
    series_sizes = Counter(str(i.get("ParentSeries", "")) for i in instances)
    refs = [
        InstanceRef(
            orthanc_id=i["ID"],
            sop_instance_uid=str(i.get("MainDicomTags", {}).get("SOPInstanceUID", "")),
            study_instance_uid=study.study_instance_uid,
            file_size=int(i.get("FileSize", 0)),
            series_id=str(i.get("ParentSeries", "")),
            study_id=study.orthanc_id,
            patient_id=study.patient_id,
            series_size=series_sizes[str(i.get("ParentSeries", ""))],
            modality=modalities.get(str(i.get("ParentSeries", "")), ""),
        )
        for i in instances
    ]
    return sorted(refs, key=lambda r: r.orthanc_id)
