"""Deciding on the series that are due: wait longer, forget, or queue a conversion job.

:func:`dispatch_due_once` claims the due series (skipping those another replica is deciding
on), reads each from Orthanc, picks its rule (:mod:`.matching`) and decides. A series is
converted once its rule's delay has passed since Orthanc marked it stable, inside one of the
rule's time windows, unless the rule is paused; only the instances the rule takes and that are
not HTJ2K yet are converted, with the same safe replacement as a migration: an ordinary
conversion job ("series" selection, the rule as its origin) that whatever runs jobs runs.
A decision is written only if the series did not change meanwhile, in one transaction with the
job it creates: a series' stability is converted once, whichever replicas decide.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from dicomgate.conversions import service as conversions
from dicomgate.conversions.lifecycle import STOPPING_ERRORS
from dicomgate.conversions.plan import series_selection
from dicomgate.db import session_scope
from dicomgate.errors import DicomgateError
from dicomgate.kit.clock import utcnow
from dicomgate.rules import repository
from dicomgate.rules.config import Rule, RuleSet
from dicomgate.rules.facts import read_instances, read_series
from dicomgate.rules.matching import candidate_rules, choose_rule, next_opening, window_open
from dicomgate.rules.repository import DueSeries
from dicomgate.runtime import Runtime

log = logging.getLogger(__name__)

StartJob = Callable[[int], Awaitable[None]]  # hands a created job to whatever runs jobs

CLAIM_FOR = datetime.timedelta(minutes=5)  # SQLite: a claim left by a crash lapses after this
DUE_PER_TICK = 20  # series decided per call
# An instance whose conversion failed this many times under rules is left alone (its failures
# are in the jobs' errors): a failed replacement re-posts the original, which makes the series
# stable again, and it must not loop for ever. One a rule's job skipped (no pixel data, a lossy
# source, …) is not sent again each time its series is stored into.
MAX_FAILED_ATTEMPTS = 3


@dataclass(frozen=True)
class Wait:
    """Decide again at ``until`` (``rule``: the rule it waits for, when known)."""

    until: datetime.datetime
    rule: str | None
    why: str
    study_id: str = ""
    study_instance_uid: str = ""


@dataclass(frozen=True)
class Forget:
    """Nothing to do for this stability (no rule takes it, nothing left to convert, gone)."""

    why: str


@dataclass(frozen=True)
class Queue:
    """Convert these instances of the series, as ``rule``."""

    rule: Rule
    study_id: str
    study_instance_uid: str
    series_id: str
    instance_ids: tuple[str, ...]


Decision = Wait | Forget | Queue


async def decide(
    runtime: Runtime,
    rules: RuleSet,
    row: DueSeries,
    *,
    now: datetime.datetime,
    paused: set[str],
) -> Decision:
    """What to do with one due series (reads Orthanc; writes nothing)."""
    recheck = now + datetime.timedelta(seconds=runtime.settings.rules_poll_interval)
    if row.job_running:
        return Wait(recheck, row.rule, "its last conversion job has not ended")
    series = await read_series(runtime.orthanc, row.series_id)
    if series is None:
        return Forget("the series is gone")
    today = now.astimezone(rules.zone).date()
    candidates = candidate_rules(rules.rules, series.facts, today=today)
    if not candidates:
        return Forget("no rule takes it")
    place = {"study_id": series.study_id, "study_instance_uid": series.study_instance_uid}
    earliest = min(row.stable_at + rule.delay for rule in candidates)
    if earliest > now:
        known = candidates[0].name if len(candidates) == 1 else None
        return Wait(earliest, known, "delay", **place)
    if not any(window_open(rule, now, rules.zone) for rule in candidates):
        opening = min(next_opening(rule, now, rules.zone) for rule in candidates)
        known = candidates[0].name if len(candidates) == 1 else None
        return Wait(opening, known, "outside its windows", **place)
    instances = await read_instances(
        runtime.orthanc, series.instance_ids, concurrency=runtime.settings.orthanc_concurrency
    )
    choice = choose_rule(candidates, series.facts, [i.facts for i in instances], today=today)
    if choice is None:
        return Forget("no rule takes its instances")
    rule = choice.rule
    if row.stable_at + rule.delay > now:
        return Wait(row.stable_at + rule.delay, rule.name, "delay", **place)
    if rule.name in paused:
        return Wait(now, rule.name, "paused", **place)
    if not window_open(rule, now, rules.zone):
        return Wait(next_opening(rule, now, rules.zone), rule.name, "outside its windows", **place)
    taken = {facts.orthanc_id for facts in choice.instances}
    todo = [i.facts.orthanc_id for i in instances if i.to_convert and i.facts.orthanc_id in taken]
    async with session_scope(runtime.sessions) as session:
        earlier = await repository.earlier_outcomes(session, todo)
    todo = [
        i
        for i in todo
        if i not in earlier.skipped and earlier.failures.get(i, 0) < MAX_FAILED_ATTEMPTS
    ]
    if not todo:
        return Forget("nothing left to convert")
    return Queue(rule, series.study_id, series.study_instance_uid, row.series_id, tuple(todo))


async def dispatch_due_once(runtime: Runtime, rules: RuleSet, start: StartJob) -> int:
    """Decide on the series that are due; start the jobs created; how many were created."""
    now = utcnow()
    async with session_scope(runtime.sessions) as session:
        await repository.drop_finished(session)
        paused = set(await repository.pauses(session))
    if runtime.engine.dialect.name == "postgresql":
        # Decided and written under the rows' locks (see repository.take_due).
        async with session_scope(runtime.sessions) as session:
            rows = await repository.take_due(session, now=now, paused=paused, limit=DUE_PER_TICK)
            created = await _write(session, await _decide_all(runtime, rules, rows, now, paused))
    else:
        async with session_scope(runtime.sessions) as session:
            rows = await repository.take_due(
                session, now=now, paused=paused, limit=DUE_PER_TICK, claim_until=now + CLAIM_FOR
            )
        decided = await _decide_all(runtime, rules, rows, now, paused)
        async with session_scope(runtime.sessions) as session:
            created = await _write(session, decided)
    for job_id in created:
        await start(job_id)
    return len(created)


async def _decide_all(
    runtime: Runtime,
    rules: RuleSet,
    rows: Sequence[DueSeries],
    now: datetime.datetime,
    paused: set[str],
) -> list[tuple[DueSeries, Decision]]:
    """A decision for each row; Orthanc failing makes the rest wait for the next round."""
    decided: list[tuple[DueSeries, Decision]] = []
    retry = now + datetime.timedelta(seconds=runtime.settings.rules_poll_interval)
    stopped: str | None = None
    for row in rows:
        if stopped is not None:
            decided.append((row, Wait(retry, row.rule, stopped)))
            continue
        try:
            decision = await decide(runtime, rules, row, now=now, paused=paused)
        except STOPPING_ERRORS as exc:  # Orthanc away: every other series would fail too
            stopped = exc.message
            decision = Wait(retry, row.rule, stopped)
        except DicomgateError as exc:
            log.warning("Compression rules: series %s: %s", row.series_id, exc.message)
            decision = Wait(retry, row.rule, exc.message)
        decided.append((row, decision))
    if stopped is not None:
        log.warning("Compression rules: Orthanc failed (%s); deciding again shortly", stopped)
    return decided


async def _write(session: AsyncSession, decided: Sequence[tuple[DueSeries, Decision]]) -> list[int]:
    """Write the decisions; the jobs created (one per study and rule)."""
    groups: dict[tuple[str, str], list[tuple[DueSeries, Queue]]] = {}
    created: list[int] = []
    for row, decision in decided:
        if isinstance(decision, Forget):
            await repository.forget(session, row)
            log.debug("Compression rules: series %s: %s", row.series_id, decision.why)
        elif isinstance(decision, Wait):
            await repository.reschedule(
                session,
                row,
                due_at=decision.until,
                rule=decision.rule,
                study_id=decision.study_id,
                study_instance_uid=decision.study_instance_uid,
            )
        else:
            key = (decision.study_id, decision.rule.name)
            groups.setdefault(key, []).append((row, decision))
    for members in groups.values():
        job_id = await _queue(session, members)
        if job_id is not None:
            created.append(job_id)
    return created


async def _queue(session: AsyncSession, members: list[tuple[DueSeries, Queue]]) -> int | None:
    """One job for the series of one study taken by one rule (those unchanged meanwhile)."""
    first = members[0][1]
    rule, study_id, study_uid = first.rule, first.study_id, first.study_instance_uid
    kept: list[tuple[DueSeries, Queue]] = []
    for row, decision in members:
        if await repository.mark_queued(
            session, row, rule=rule.name, study_id=study_id, study_instance_uid=study_uid
        ):
            kept.append((row, decision))
    if not kept:
        return None
    selection = series_selection(
        study_uid,
        [decision.series_id for _, decision in kept],
        [i for _, decision in kept for i in decision.instance_ids],
    )
    job_id = await conversions.create_job(
        session, selection=selection, origin=rule.origin, target_syntax=rule.target
    )
    await repository.link_job(session, [row.id for row, _ in kept], job_id)
    return job_id
