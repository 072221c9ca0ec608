"""What an audited request touched: routes and services note it, the audit middleware writes it.

A route in ``auth.policy.AUDITED_ACTIONS`` is audited after it answers (refused and failed
attempts too). Whatever the request touched on the way (patients, studies, series, instances)
is noted here, on the request's ASGI state, and becomes the audit row's ``resource``: so the
trail can answer "who saw or changed this patient's images" even after the data is gone.
"""

from __future__ import annotations

from collections.abc import Iterable
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


def _resource(state: dict[str, Any]) -> dict[str, Any]:
    resource = state.get(STATE_KEY)
    if not isinstance(resource, dict):
        resource = state[STATE_KEY] = {}
    return resource


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
    state: dict[str, Any] = request.scope.setdefault("state", {})
    resource = _resource(state)
    given = {
        "patient_ids": patient_ids,
        "study_instance_uids": study_instance_uids,
        "series_instance_uids": series_instance_uids,
        "sop_instance_uids": sop_instance_uids,
        "orthanc_ids": orthanc_ids,
    }
    for key, values in given.items():
        listed: list[str] = resource.setdefault(key, [])
        seen = set(listed)
        for value in values:
            if value and value not in seen:
                seen.add(value)
                listed.append(value)
        if not listed:
            del resource[key]
