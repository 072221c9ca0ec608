"""``GET /api/ris/audit/``: the audit trail, for administrators."""

from __future__ import annotations

import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from dicomgate.audit.service import find_events
from dicomgate.dependencies import SessionDep
from dicomgate.errors import ErrorBody

router = APIRouter(prefix="/api/ris/audit", tags=["audit"])


class AuditEventOut(BaseModel):
    id: int
    at: datetime.datetime
    actor: str
    action: str
    resource: str
    client: str
    status_code: int
    outcome: str


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
                            "resource": '{"instance_id": '
                            '"7d1c8273-c20ed3f0-009d9453-bf56d47d-62747d94"}',
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
    session: SessionDep,
    since: Annotated[datetime.datetime | None, Query()] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    """Who did what, to which resource, when, from where, and the outcome."""
    events = await find_events(session, since=since, actor=actor, action=action, limit=limit)
    return AuditPage(events=[AuditEventOut.model_validate(e, from_attributes=True) for e in events])
