"""What an audited request touched: routes and services note it, the audit middleware writes it.

A route in ``auth.policy.AUDITED_ACTIONS`` is audited after it answers (refused and failed
attempts too). Whatever the request touched on the way (patients, studies, series, instances)
is noted here, on the request's ASGI state, and becomes the audit row's ``resource``: so the
trail can answer "who saw or changed this patient's images" even after the data is gone.

Routes call ``note_touched(request, …)``; services, which know no request, are handed the
request's ``AuditNotes`` (``audit_notes(request)``) and call ``notes.touched(…)``: both write
into the same object. Note *before* acting, so a refused or failed attempt keeps its resource.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import HTTPConnection

STATE_KEY = "audit_resource"
# The keys of the audit resource object (each a list of strings, in the order first noted).
TOUCHED_KEYS = (
    "patient_ids",
    "study_instance_uids",
    "series_instance_uids",
    "sop_instance_uids",
    "orthanc_ids",
)
CONFLICTS_KEY = "conflicts"  # identity conflicts: what an upload was refused against
MAX_CONFLICTS = 100  # per request; the count beyond is kept in "conflicts_not_listed"


def _resource(state: dict[str, Any]) -> dict[str, Any]:
    resource = state.get(STATE_KEY)
    if not isinstance(resource, dict):
        resource = state[STATE_KEY] = {}
    return resource


@dataclass
class Touched:
    """What one resource holds, in the audit resource's words (built by the domain that knows)."""

    patient_ids: list[str] = field(default_factory=list)
    study_instance_uids: list[str] = field(default_factory=list)
    series_instance_uids: list[str] = field(default_factory=list)
    sop_instance_uids: list[str] = field(default_factory=list)
    orthanc_ids: list[str] = field(default_factory=list)


class AuditNotes:
    """The resource object of one request's audit row (or a free-standing one, for the CLI)."""

    def __init__(self, resource: dict[str, Any] | None = None) -> None:
        self.resource: dict[str, Any] = {} if resource is None else resource

    def touched(
        self,
        *,
        patient_ids: Iterable[str] = (),
        study_instance_uids: Iterable[str] = (),
        series_instance_uids: Iterable[str] = (),
        sop_instance_uids: Iterable[str] = (),
        orthanc_ids: Iterable[str] = (),
    ) -> None:
        """Add what was touched (duplicates and empty values dropped)."""
        given = {
            "patient_ids": patient_ids,
            "study_instance_uids": study_instance_uids,
            "series_instance_uids": series_instance_uids,
            "sop_instance_uids": sop_instance_uids,
            "orthanc_ids": orthanc_ids,
        }
        for key, values in given.items():
            listed: list[str] = self.resource.setdefault(key, [])
            seen = set(listed)
            for value in values:
                if value and value not in seen:
                    seen.add(value)
                    listed.append(value)
            if not listed:
                del self.resource[key]

    def add(self, touched: Touched) -> None:
        """Add everything ``touched`` names."""
        self.touched(
            patient_ids=touched.patient_ids,
            study_instance_uids=touched.study_instance_uids,
            series_instance_uids=touched.series_instance_uids,
            sop_instance_uids=touched.sop_instance_uids,
            orthanc_ids=touched.orthanc_ids,
        )

    def conflict(
        self,
        *,
        sop_instance_uid: str,
        patient_id: str,
        existing_patient_id: str,
        existing_orthanc_id: str,
        reason: str,
    ) -> None:
        """An instance refused because of what is already stored: both sides are named."""
        self.touched(
            patient_ids=[patient_id, existing_patient_id],
            sop_instance_uids=[sop_instance_uid],
            orthanc_ids=[existing_orthanc_id],
        )
        conflicts: list[dict[str, str]] = self.resource.setdefault(CONFLICTS_KEY, [])
        if len(conflicts) >= MAX_CONFLICTS:
            self.resource["conflicts_not_listed"] = self.resource.get("conflicts_not_listed", 0) + 1
            return
        conflicts.append(
            {
                "sop_instance_uid": sop_instance_uid,
                "patient_id": patient_id,
                "existing_patient_id": existing_patient_id,
                "existing_orthanc_id": existing_orthanc_id,
                "reason": reason,
            }
        )


def audit_notes(request: HTTPConnection) -> AuditNotes:
    """The request's notes (every call returns a view of the same resource object)."""
    state: dict[str, Any] = request.scope.setdefault("state", {})
    return AuditNotes(_resource(state))


def note_touched(
    request: HTTPConnection,
    *,
    patient_ids: Iterable[str] = (),
    study_instance_uids: Iterable[str] = (),
    series_instance_uids: Iterable[str] = (),
    sop_instance_uids: Iterable[str] = (),
    orthanc_ids: Iterable[str] = (),
) -> None:
    """Add what this request touched to its audit row (duplicates and empty values dropped)."""
    audit_notes(request).touched(
        patient_ids=patient_ids,
        study_instance_uids=study_instance_uids,
        series_instance_uids=series_instance_uids,
        sop_instance_uids=sop_instance_uids,
        orthanc_ids=orthanc_ids,
    )
