"""Make uploaded files one study with one series per folder (a folder upload's identity).

The Study and Series Instance UIDs are replaced (and recorded as Original Attributes by the
caller); the caller also gives each file a new SOP Instance UID derived from its new series
(``ingest.idempotency.instance_uid_for``), so the same image placed in two studies is two
instances, and the same image retried into one study is one. Pixel data is not touched.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from pydicom.dataset import Dataset

from dicomgate.dicom.vr import long_string


@dataclass(frozen=True)
class SeriesAssignment:
    """Where one uploaded file goes: the request's study and its folder's series."""

    study_instance_uid: str
    study_description: str | None
    series_instance_uid: str
    series_number: int
    series_description: str | None
    # StudyDate/StudyTime for files without them (None: the request's time). A retried upload
    # passes the first attempt's, so every instance of the study says the same.
    study_date: str | None = None
    study_time: str | None = None


def series_label(series_path: str) -> str:
    """The last folder name of a client-supplied path (a label only, never a file-system path)."""
    parts = [
        p for p in series_path.replace("\\", "/").split("/") if p.strip() not in ("", ".", "..")
    ]
    return long_string(parts[-1]) if parts else ""


def study_changes(
    ds: Dataset, assignment: SeriesAssignment, *, now: datetime.datetime
) -> dict[str, object]:
    """The attribute values that put ``ds`` into the assigned study and series.

    StudyDate/StudyTime are only set where missing or empty (PS3.3 C.7.2.1, Type 2).
    """
    changes: dict[str, object] = {
        "StudyInstanceUID": assignment.study_instance_uid,
        "SeriesInstanceUID": assignment.series_instance_uid,
        "SeriesNumber": assignment.series_number,
    }
    if assignment.study_description is not None:
        changes["StudyDescription"] = long_string(assignment.study_description)
    if assignment.series_description:
        changes["SeriesDescription"] = long_string(assignment.series_description)
    if not ds.get("StudyDate"):
        changes["StudyDate"] = assignment.study_date or now.strftime("%Y%m%d")
    if not ds.get("StudyTime"):
        changes["StudyTime"] = assignment.study_time or now.strftime("%H%M%S")
    return changes
