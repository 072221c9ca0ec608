"""Admin API for the compression rules: list them, show the backlog, pause and resume."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from dicomgate.dependencies import RuntimeDep, SessionDep
from dicomgate.errors import RuleNotFound, error_responses
from dicomgate.rules import repository, service
from dicomgate.rules.config import RuleSet
from dicomgate.rules.follower import follower_state
from dicomgate.rules.schemas import BacklogItemOut, BacklogOut, FollowerOut, RuleOut, RulesOut

router = APIRouter(prefix="/api/ris/rules", tags=["rules"])


def _rules(request: Request) -> RuleSet | None:
    rules: RuleSet | None = request.app.state.rules
    return rules


def _caller(request: Request) -> str:
    principal = getattr(request.state, "principal", None)
    return str(getattr(principal, "subject", "") or "unknown")


@router.get(
    "/",
    response_model=RulesOut,
    summary="The compression rules, each with its pause, backlog and counts",
    operation_id="listRules",
)
async def list_rules(request: Request, session: SessionDep, runtime: RuntimeDep) -> RulesOut:
    rules = _rules(request)
    statuses = await service.rule_statuses(session, rules)
    return RulesOut.of(rules, statuses, await follower_state(runtime))


@router.get(
    "/backlog/",
    response_model=BacklogOut,
    summary="Series waiting for a rule or being converted by one, next due first",
    operation_id="getRulesBacklog",
)
async def get_backlog(
    session: SessionDep,
    runtime: RuntimeDep,
    limit: int = Query(default=100, ge=1, le=1000),
) -> BacklogOut:
    counts = await repository.backlog_counts(session)
    rows = await repository.backlog_rows(session, limit=limit)
    return BacklogOut(
        waiting=sum(n for (_, state), n in counts.items() if state == "waiting"),
        queued=sum(n for (_, state), n in counts.items() if state == "queued"),
        follower=FollowerOut.of(await follower_state(runtime)),
        items=[BacklogItemOut.of(row) for row in rows],
    )


@router.post(
    "/{name}/pause/",
    response_model=RuleOut,
    summary="Pause a rule on every replica (its series wait until resumed)",
    operation_id="pauseRule",
    responses=error_responses(RuleNotFound),
)
async def pause_rule(name: str, request: Request, session: SessionDep) -> RuleOut:
    status = await service.pause_rule(session, _rules(request), name, by=_caller(request))
    return RuleOut.of(status)


@router.post(
    "/{name}/resume/",
    response_model=RuleOut,
    summary="Resume a paused rule on every replica",
    operation_id="resumeRule",
    responses=error_responses(RuleNotFound),
)
async def resume_rule(name: str, request: Request, session: SessionDep) -> RuleOut:
    return RuleOut.of(await service.resume_rule(session, _rules(request), name))
