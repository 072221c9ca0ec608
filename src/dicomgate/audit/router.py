"""``GET /api/ris/audit/``: the audit trail, for administrators."""

from __future__ import annotations

import datetime
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from dicomgate.audit.context import note_touched
from dicomgate.audit.service import find_events
from dicomgate.dependencies import SessionDep
from dicomgate.errors import ErrorBody

router = APIRouter(prefix="/api/ris/audit", tags=["audit"])


class AuditEventOut(BaseModel):
    id: int
    at: datetime.datetime = Field(description="When (UTC, with its offset).")
    actor: str = Field(description="The caller: JWT subject, apikey:<name>, or anonymous.")
    action: str = Field(
        description="upload, download, preview, query, delete, patient_read, patient_change, "
        "convert, audit_read, …"
    )
    resource: dict[str, Any] = Field(
        description="What was touched: patient_ids, study_instance_uids, series_instance_uids, "
        "sop_instance_uids, orthanc_ids (lists), the route's path parameters and audited "
        "query parameters, and for identity refusals `conflicts` (what was already stored)."
    )
    client: str = Field(description="The client's address (see DICOMGATE_TRUSTED_PROXIES).")
    status_code: int
    outcome: str = Field(description="success, failure or denied (401/403).")

    @field_validator("resource", mode="before")
    @classmethod
    def _parse(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                parsed = json.loads(value) if value else {}
            except ValueError:
                parsed = {"text": value}  # a row written before the resource was JSON
            return parsed if isinstance(parsed, dict) else {"value": parsed}
        return value


class AuditPage(BaseModel):
    success: bool = True
    events: list[AuditEventOut]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "success": True,
                    "events": [
                        {
                            "id": 812,
                            "at": "2026-11-23T09:41:07Z",
                            "actor": "dr.kim",
                            "action": "download",
                            "resource": {
                                "instance_id": "7d1c8273-c20ed3f0-009d9453-bf56d47d-62747d94",
                                "patient_ids": ["P001"],
                                "study_instance_uids": ["1.2.826.0.1.3680043.8.498.1"],
                                "series_instance_uids": ["1.2.826.0.1.3680043.8.498.2"],
                                "sop_instance_uids": ["1.2.826.0.1.3680043.8.498.3"],
                                "orthanc_ids": ["7d1c8273-c20ed3f0-009d9453-bf56d47d-62747d94"],
                            },
                            "client": "10.1.2.3",
                            "status_code": 200,
                            "outcome": "success",
                        }
                    ],
                }
            ]
        }
    )


@router.get(
    "/",
    response_model=AuditPage,
    summary="Audit trail (newest first)",
    operation_id="listAuditEvents",
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
async def list_audit_events(
    request: Request,
    session: SessionDep,
    since: Annotated[datetime.datetime | None, Query()] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=40)] = None,
    patient_id: Annotated[
        str | None,
        Query(max_length=64, description="Only events that touched this DICOM Patient ID."),
    ] = None,
    study_instance_uid: Annotated[
        str | None,
        Query(max_length=64, description="Only events that touched this Study Instance UID."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    """Who did what, to which resource, when, from where, and the outcome."""
    # Reading the trail is itself audited ("Audit Log Used"), naming whose trail was read.
    note_touched(
        request,
        patient_ids=[patient_id or ""],
        study_instance_uids=[study_instance_uid or ""],
    )
    trail = getattr(request.app.state, "audit_trail", None)
    if trail is not None:
        await trail.flush()  # every row recorded before this request is in the answer
    events = await find_events(
        session,
        since=since,
        actor=actor,
        action=action,
        patient_id=patient_id,
        study_instance_uid=study_instance_uid,
        limit=limit,
    )
    return AuditPage(events=[AuditEventOut.model_validate(e, from_attributes=True) for e in events])
