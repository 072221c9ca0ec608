"""The compression rules at work: the periodic loop, what the API shows, pause and resume.

The loop (:class:`RulesLoop`) runs in the service process when a rules file is configured:
every ``DICOMGATE_RULES_POLL_INTERVAL`` seconds it follows Orthanc's changes until caught up
(:func:`.follower.follow_changes_once`), decides on the series that are due
(:func:`.dispatch.dispatch_due_once`) and refreshes the metrics. Any number of replicas may run
it on one database; both steps are plain async functions a task queue can run as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from dicomgate import metrics
from dicomgate.db import session_scope
from dicomgate.errors import RuleNotFound
from dicomgate.kit.clock import utcnow
from dicomgate.rules import repository
from dicomgate.rules.config import Rule, RuleSet
from dicomgate.rules.dispatch import StartJob, dispatch_due_once
from dicomgate.rules.follower import follow_changes_once, follower_state
from dicomgate.rules.models import RulePause
from dicomgate.runtime import Runtime

log = logging.getLogger(__name__)

CATCH_UP_BATCHES = 20  # batches taken per tick at most, so that decisions are not starved


async def refresh_metrics(runtime: Runtime) -> None:
    """Backlog, lag and per-rule counts from the database (the same on every replica)."""
    async with session_scope(runtime.sessions) as session:
        backlog = await repository.backlog_counts(session)
        by_rule = await repository.instances_by_rule(session)
    state = await follower_state(runtime)
    metrics.record_rules_state(backlog=backlog, lag_changes=state.lag_changes, by_rule=by_rule)


async def adopt_rules(runtime: Runtime, rules: RuleSet) -> None:
    """Rules other than those the waiting series were decided under: decide on them again."""
    async with session_scope(runtime.sessions) as session:
        redo = await repository.adopt_rules(session, rules.digest, now=utcnow())
    if redo:
        log.info("Compression rules changed: %d waiting series are decided on again", redo)


async def run_rules_once(runtime: Runtime, rules: RuleSet, start: StartJob) -> int:
    """One tick: follow the changes until caught up, decide on what is due; jobs created."""
    for _ in range(CATCH_UP_BATCHES):
        if await follow_changes_once(runtime) < runtime.settings.rules_batch_size:
            break
    created = await dispatch_due_once(runtime, rules, start)
    await refresh_metrics(runtime)
    return created


class RulesLoop:
    """The rules' periodic task in this process (started and stopped by the lifespan)."""

    def __init__(self, runtime: Runtime, rules: RuleSet, start: StartJob) -> None:
        self._runtime = runtime
        self._rules = rules
        self._start = start
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="compression-rules")

    async def _run(self) -> None:
        interval = self._runtime.settings.rules_poll_interval
        log.info(
            "Compression rules: %d rules, following Orthanc's changes every %.1f s",
            len(self._rules.rules),
            interval,
        )
        adopted = False
        while True:
            try:
                if not adopted:
                    await adopt_rules(self._runtime, self._rules)
                    adopted = True
                await run_rules_once(self._runtime, self._rules, self._start)
            except asyncio.CancelledError:
                raise
            except Exception:  # an Orthanc or database outage: say so, try again next tick
                log.exception("Compression rules: this round failed; trying again")
            await asyncio.sleep(interval)

    async def stop(self) -> None:
        """Stop between rounds or mid-round (a round cut short commits nothing half-done)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


# --- What the API shows ----------------------------------------------------------------------
@dataclass(frozen=True)
class RuleStatus:
    """A rule with its pause, its backlog and what its jobs did."""

    rule: Rule
    pause: RulePause | None
    waiting: int
    queued: int
    counts: dict[str, int]


async def rule_statuses(session: AsyncSession, rules: RuleSet | None) -> list[RuleStatus]:
    """Every rule of the file, in order, with its state."""
    if rules is None:
        return []
    paused = await repository.pauses(session)
    backlog = await repository.backlog_counts(session)
    by_rule = await repository.instances_by_rule(session)
    return [
        RuleStatus(
            rule=rule,
            pause=paused.get(rule.name),
            waiting=backlog.get((rule.name, "waiting"), 0),
            queued=backlog.get((rule.name, "queued"), 0),
            counts=by_rule.get(rule.name, {"converted": 0, "skipped": 0, "failed": 0}),
        )
        for rule in rules.rules
    ]


def find_rule(rules: RuleSet | None, name: str) -> Rule:
    """The rule with this name, or RuleNotFound (also when no rules file is configured)."""
    if rules is None:
        raise RuleNotFound("No compression rules are configured (DICOMGATE_RULES_FILE)")
    rule = rules.get(name)
    if rule is None:
        raise RuleNotFound(f"No compression rule named {name!r}")
    return rule


async def pause_rule(
    session: AsyncSession, rules: RuleSet | None, name: str, *, by: str
) -> RuleStatus:
    """Pause a rule on every replica: its series keep arriving and wait until resumed."""
    find_rule(rules, name)
    await repository.pause(session, name, by=by)
    log.warning("Compression rule %s paused by %s", name, by)
    return next(s for s in await rule_statuses(session, rules) if s.rule.name == name)


async def resume_rule(session: AsyncSession, rules: RuleSet | None, name: str) -> RuleStatus:
    """Resume a paused rule on every replica: what waited is decided at the next tick."""
    find_rule(rules, name)
    await repository.resume(session, name)
    log.warning("Compression rule %s resumed", name)
    return next(s for s in await rule_statuses(session, rules) if s.rule.name == name)
