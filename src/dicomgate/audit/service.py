"""Write and query audit events."""

from __future__ import annotations

import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dicomgate.audit.models import AuditEvent


def outcome_of(status_code: int) -> str:
    if status_code in (401, 403):
        return "denied"
    return "success" if status_code < 400 else "failure"


async def record_event(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    resource: str,
    client: str,
    status_code: int,
) -> AuditEvent:
    """Add one audit row (flushed; the caller's scope commits)."""
    event = AuditEvent(
        actor=actor,
        action=action,
        resource=resource[:2000],
        client=client,
        status_code=status_code,
        outcome=outcome_of(status_code),
    )
    session.add(event)
    await session.flush()
    return event


async def find_events(
    session: AsyncSession,
    *,
    since: datetime.datetime | None,
    actor: str | None,
    action: str | None,
    limit: int,
) -> list[AuditEvent]:
    """Newest first, filtered."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if action:
        query = query.where(AuditEvent.action == action)
    return list(await session.scalars(query))
