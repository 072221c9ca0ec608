"""Write and query audit events (and the indexed subjects of each)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from dicomgate.audit.models import (
    SUBJECT_KINDS,
    SUBJECT_VALUE_MAX,
    AuditEvent,
    AuditEventSubject,
)


def outcome_of(status_code: int) -> str:
    if status_code in (401, 403):
        return "denied"
    return "success" if status_code < 400 else "failure"


@dataclass(frozen=True)
class AuditEntry:
    """One audited request, as the middleware saw it (written as a row, sent as ATNA)."""

    at: datetime.datetime
    actor: str
    action: str
    method: str
    route: str
    client: str
    status_code: int
    resource: Mapping[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        return outcome_of(self.status_code)


def subjects_of(resource: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The (kind, value) pairs of a resource that the audit filters search by index."""
    found: set[tuple[str, str]] = set()
    for key, kind in SUBJECT_KINDS.items():
        values = resource.get(key) or []
        if isinstance(values, list):
            found |= {(kind, str(v)[:SUBJECT_VALUE_MAX]) for v in values if v}
    return found


def _event_row(entry: AuditEntry) -> dict[str, Any]:
    return {
        "at": entry.at,
        "actor": entry.actor[:200],
        "action": entry.action,
        "resource": json.dumps(entry.resource, sort_keys=True),
        "client": entry.client[:100],
        "status_code": entry.status_code,
        "outcome": entry.outcome,
    }


async def record_events(session: AsyncSession, entries: Sequence[AuditEntry]) -> list[int]:
    """Add audit rows and their subjects, in order; their IDs (the caller's scope commits).

    Two bulk INSERTs whatever the number of rows (Core, not ORM objects: a viewer's frame
    requests write a row each, and the unit of work cost more than the statement): the events,
    whose IDs come back in the order given, then their subjects, which need those IDs.
    """
    if not entries:
        return []
    added = await session.execute(
        insert(AuditEvent).returning(AuditEvent.id, sort_by_parameter_order=True),
        [_event_row(entry) for entry in entries],
    )
    ids = list(added.scalars())
    subjects = [
        {"event_id": event_id, "kind": kind, "value": value}
        for event_id, entry in zip(ids, entries, strict=True)
        for kind, value in sorted(subjects_of(entry.resource))
    ]
    if subjects:
        await session.execute(insert(AuditEventSubject), subjects)
    return ids


async def record_event(session: AsyncSession, entry: AuditEntry) -> int:
    """Add one audit row and its subjects; its ID (the caller's scope commits)."""
    [event_id] = await record_events(session, [entry])
    return event_id


async def find_events(
    session: AsyncSession,
    *,
    since: datetime.datetime | None,
    actor: str | None,
    action: str | None,
    patient_id: str | None = None,
    study_instance_uid: str | None = None,
    limit: int,
) -> list[AuditEvent]:
    """Newest first, filtered; the patient and study filters go through the subjects index."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if action:
        query = query.where(AuditEvent.action == action)
    for kind, value in (("patient", patient_id), ("study", study_instance_uid)):
        if value:
            query = query.where(
                AuditEvent.id.in_(
                    select(AuditEventSubject.event_id).where(
                        AuditEventSubject.kind == kind, AuditEventSubject.value == value
                    )
                )
            )
    return list(await session.scalars(query))
