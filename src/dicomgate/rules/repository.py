"""The rules' rows in the database: the cursor, the backlog of series, the pauses.

Functions take the caller's session and only flush; the caller's session scope commits. Several
replicas share these rows: the cursor is taken under a row lock (PostgreSQL ``FOR UPDATE SKIP
LOCKED``: one follower at a time, the others skip), a backlog row is claimed for a while by the
replica deciding on it, and every decision is written only if the row's ``version`` is still the
one decided on (a newer ``StableSeries`` change wins).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dicomgate.conversions.models import UNFINISHED_STATES, ConversionJob, ConversionOutcome
from dicomgate.rules.models import CURSOR_ID, RulePause, RulesCursor, RuleSeries

RULE_ORIGIN_PREFIX = "rule:"


def _postgresql(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def _take_write_lock(session: AsyncSession) -> None:
    """SQLite: take the database's write lock now, so that this transaction's reads and its
    writes see one state (a read transaction upgraded later can fail with "database is
    locked"). PostgreSQL locks rows instead."""
    if not _postgresql(session):
        await session.execute(
            update(RulesCursor).where(RulesCursor.id == CURSOR_ID).values(id=RulesCursor.id)
        )


# --- The cursor ---------------------------------------------------------------------------------
async def take_cursor(session: AsyncSession) -> RulesCursor | None:
    """The cursor row, locked until the transaction ends; None when another replica has it.

    PostgreSQL: ``FOR UPDATE SKIP LOCKED`` (a replica killed mid-batch loses its connection, its
    transaction rolls back and the lock goes with it). SQLite (one process): the write lock.
    """
    await _take_write_lock(session)
    query = select(RulesCursor).where(RulesCursor.id == CURSOR_ID)
    if _postgresql(session):
        query = query.with_for_update(skip_locked=True)
    cursor = (await session.scalars(query)).first()
    if cursor is None and not _postgresql(session):
        cursor = RulesCursor(id=CURSOR_ID)
        session.add(cursor)
        await session.flush()
    return cursor


async def read_cursor(session: AsyncSession) -> RulesCursor | None:
    """The cursor as last written (no lock)."""
    return await session.get(RulesCursor, CURSOR_ID)


async def adopt_rules(session: AsyncSession, digest: str, *, now: datetime.datetime) -> int:
    """Make every waiting series due now if it was decided under other rules; how many."""
    await _take_write_lock(session)
    query = select(RulesCursor).where(RulesCursor.id == CURSOR_ID)
    if _postgresql(session):
        query = query.with_for_update()
    cursor = (await session.scalars(query)).first()
    if not _postgresql(session):  # one process: claims left by a previous run are stale
        await session.execute(update(RuleSeries).values(claimed_until=None))
    if cursor is None or cursor.rules_digest == digest:
        return 0
    cursor.rules_digest = digest
    result = await session.execute(
        update(RuleSeries)
        .where(RuleSeries.state == "waiting", RuleSeries.due_at > now)
        .values(due_at=now, rule=None)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


# --- The backlog --------------------------------------------------------------------------------
async def note_stable_series(
    session: AsyncSession, *, series_id: str, seq: int, at: datetime.datetime
) -> None:
    """Orthanc marked a series stable: it waits (again) for a decision, as a new version."""
    row = await session.scalar(select(RuleSeries).where(RuleSeries.series_id == series_id))
    if row is None:
        session.add(
            RuleSeries(
                series_id=series_id,
                state="waiting",
                stable_seq=seq,
                stable_at=at,
                due_at=at,
                version=1,
            )
        )
    else:
        # The last job stays linked: no new one starts for the series until it has ended.
        row.state = "waiting"
        row.rule = None
        row.stable_seq = seq
        row.stable_at = at
        row.due_at = at
        row.version += 1
        row.claimed_until = None
    await session.flush()


@dataclass(frozen=True)
class DueSeries:
    """A backlog row taken for a decision, as it was when taken."""

    id: int
    version: int
    series_id: str
    stable_at: datetime.datetime
    rule: str | None
    job_running: bool  # the series' last job has not ended yet


async def take_due(
    session: AsyncSession,
    *,
    now: datetime.datetime,
    paused: Iterable[str],
    limit: int,
    claim_until: datetime.datetime | None = None,
) -> list[DueSeries]:
    """The waiting series due by ``now``, oldest due first, for this replica to decide on.

    Skipped: series another replica is deciding on, and series already decided for a paused
    rule. PostgreSQL: locked (``FOR UPDATE SKIP LOCKED``) until the transaction ends, so the
    caller decides and writes in it, and a replica that dies lets go at once. SQLite (one
    process): claimed until ``claim_until``, and the decision is written in a transaction of its
    own (holding SQLite's write lock while Orthanc is read would stall every other writer).
    """
    await _take_write_lock(session)
    paused = list(paused)
    query = (
        select(RuleSeries)
        .where(
            RuleSeries.state == "waiting",
            RuleSeries.due_at <= now,
            or_(RuleSeries.claimed_until.is_(None), RuleSeries.claimed_until < now),
        )
        .order_by(RuleSeries.due_at, RuleSeries.id)
        .limit(limit)
    )
    if paused:
        query = query.where(or_(RuleSeries.rule.is_(None), RuleSeries.rule.not_in(paused)))
    if _postgresql(session):
        query = query.with_for_update(skip_locked=True)
    rows = list((await session.scalars(query)).all())
    running = await _unfinished_jobs(session, [r.job_id for r in rows if r.job_id is not None])
    taken = []
    for row in rows:
        if claim_until is not None:
            row.claimed_until = claim_until
        taken.append(
            DueSeries(
                id=row.id,
                version=row.version,
                series_id=row.series_id,
                stable_at=row.stable_at,
                rule=row.rule,
                job_running=row.job_id in running,
            )
        )
    await session.flush()
    return taken


async def _unfinished_jobs(session: AsyncSession, job_ids: Sequence[int]) -> set[int]:
    if not job_ids:
        return set()
    query = select(ConversionJob.id).where(
        ConversionJob.id.in_(job_ids), ConversionJob.state.in_(UNFINISHED_STATES)
    )
    return set((await session.scalars(query)).all())


async def reschedule(
    session: AsyncSession,
    row: DueSeries,
    *,
    due_at: datetime.datetime,
    rule: str | None,
    study_id: str = "",
    study_instance_uid: str = "",
) -> bool:
    """Put a claimed series back to wait until ``due_at``; False if it changed meanwhile."""
    values: dict[str, object] = {"due_at": due_at, "rule": rule, "claimed_until": None}
    if study_id:
        values.update(study_id=study_id, study_instance_uid=study_instance_uid[:128])
    result = await session.execute(
        update(RuleSeries)
        .where(RuleSeries.id == row.id, RuleSeries.version == row.version)
        .values(**values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def forget(session: AsyncSession, row: DueSeries) -> bool:
    """Drop a claimed series that needs nothing; False if it changed meanwhile."""
    result = await session.execute(
        delete(RuleSeries).where(RuleSeries.id == row.id, RuleSeries.version == row.version)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def mark_queued(
    session: AsyncSession, row: DueSeries, *, rule: str, study_id: str, study_instance_uid: str
) -> bool:
    """A job will convert the series: mark it queued; False if it changed meanwhile."""
    result = await session.execute(
        update(RuleSeries)
        .where(
            RuleSeries.id == row.id,
            RuleSeries.version == row.version,
            RuleSeries.state == "waiting",
        )
        .values(
            state="queued",
            rule=rule,
            study_id=study_id,
            study_instance_uid=study_instance_uid[:128],
            claimed_until=None,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def link_job(session: AsyncSession, row_ids: Sequence[int], job_id: int) -> None:
    """Record which job converts these (queued) series."""
    await session.execute(
        update(RuleSeries).where(RuleSeries.id.in_(row_ids)).values(job_id=job_id)
    )


async def drop_finished(session: AsyncSession) -> int:
    """Drop queued series whose job has ended (or is gone); how many."""
    await _take_write_lock(session)
    unfinished = select(ConversionJob.id).where(ConversionJob.state.in_(UNFINISHED_STATES))
    result = await session.execute(
        delete(RuleSeries).where(
            RuleSeries.state == "queued",
            or_(RuleSeries.job_id.is_(None), RuleSeries.job_id.not_in(unfinished)),
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class EarlierOutcomes:
    """What rule jobs already did with some instances."""

    skipped: frozenset[str]  # kept as they were (no pixel data, lossy source, …)
    failures: dict[str, int]  # how many times their conversion failed


async def earlier_outcomes(session: AsyncSession, orthanc_ids: Sequence[str]) -> EarlierOutcomes:
    """The skips and failures of rule jobs on these instances (bounded IN lists)."""
    skipped: set[str] = set()
    failures: dict[str, int] = {}
    for start in range(0, len(orthanc_ids), 500):
        query = (
            select(ConversionOutcome.orthanc_id, ConversionOutcome.outcome, func.count())
            .join(ConversionJob, ConversionJob.id == ConversionOutcome.job_id)
            .where(
                ConversionOutcome.orthanc_id.in_(orthanc_ids[start : start + 500]),
                ConversionOutcome.outcome.in_(("skipped", "failed")),
                ConversionJob.origin.like(f"{RULE_ORIGIN_PREFIX}%"),
            )
            .group_by(ConversionOutcome.orthanc_id, ConversionOutcome.outcome)
        )
        for orthanc_id, outcome, count in await session.execute(query):
            if outcome == "skipped":
                skipped.add(orthanc_id)
            else:
                failures[orthanc_id] = int(count)
    return EarlierOutcomes(frozenset(skipped), failures)


# --- What the API and the metrics show --------------------------------------------------------
async def backlog_counts(session: AsyncSession) -> dict[tuple[str, str], int]:
    """Backlog rows by (rule, state); rule "" for series not decided yet."""
    query = select(RuleSeries.rule, RuleSeries.state, func.count()).group_by(
        RuleSeries.rule, RuleSeries.state
    )
    return {(rule or "", state): int(n) for rule, state, n in await session.execute(query)}


async def backlog_rows(session: AsyncSession, *, limit: int) -> Sequence[RuleSeries]:
    """The backlog, next due first."""
    query = select(RuleSeries).order_by(RuleSeries.due_at, RuleSeries.id).limit(limit)
    return (await session.scalars(query)).all()


async def instances_by_rule(session: AsyncSession) -> dict[str, dict[str, int]]:
    """Instances converted, skipped and failed by each rule's jobs (all replicas, all time)."""
    query = (
        select(
            ConversionJob.origin,
            func.sum(ConversionJob.converted),
            func.sum(ConversionJob.skipped),
            func.sum(ConversionJob.failed),
        )
        .where(ConversionJob.origin.like(f"{RULE_ORIGIN_PREFIX}%"))
        .group_by(ConversionJob.origin)
    )
    return {
        str(origin).removeprefix(RULE_ORIGIN_PREFIX): {
            "converted": int(converted or 0),
            "skipped": int(skipped or 0),
            "failed": int(failed or 0),
        }
        for origin, converted, skipped, failed in await session.execute(query)
    }


# --- Pauses -------------------------------------------------------------------------------------
async def pauses(session: AsyncSession) -> dict[str, RulePause]:
    """Every paused rule, by name."""
    return {p.rule: p for p in (await session.scalars(select(RulePause))).all()}


async def pause(session: AsyncSession, rule: str, *, by: str) -> RulePause:
    """Pause a rule (already paused: unchanged)."""
    found = await session.get(RulePause, rule)
    if found is None:
        found = RulePause(rule=rule, paused_by=by[:256])
        session.add(found)
        await session.flush()
        await session.refresh(found)
    return found


async def resume(session: AsyncSession, rule: str) -> None:
    """Resume a paused rule (not paused: nothing to do)."""
    await session.execute(delete(RulePause).where(RulePause.rule == rule))
