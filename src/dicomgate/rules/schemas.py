"""Response bodies of the compression rules admin API."""

from __future__ import annotations

import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dicomgate.rules.config import RuleSet
from dicomgate.rules.follower import FollowerState
from dicomgate.rules.models import RuleSeries
from dicomgate.rules.service import RuleStatus

RULE_EXAMPLE: dict[str, Any] = {
    "name": "ct-at-night",
    "target": "htj2k",
    "delay_seconds": 1800.0,
    "windows": [{"start": "22:00", "end": "06:00", "days": ["mon", "tue", "wed", "thu", "fri"]}],
    "conditions": {
        "modalities": ["CT"],
        "sop_classes": None,
        "station_names": None,
        "calling_aets": ["CT_*"],
        "institutions": None,
        "study_older_than_days": None,
    },
    "paused": False,
    "paused_by": None,
    "paused_at": None,
    "waiting": 12,
    "queued": 1,
    "instances": {"converted": 48211, "skipped": 97, "failed": 0},
}
FOLLOWER_EXAMPLE: dict[str, Any] = {"last_seq": 90412, "orthanc_last_seq": 90415, "lag_changes": 3}


class WindowOut(BaseModel):
    start: str = Field(description="HH:MM, local time in the rules' timezone.")
    end: str = Field(description="HH:MM; at or before start: the next day.")
    days: list[str]


class ConditionsOut(BaseModel):
    """The rule's conditions; null: not a condition of this rule."""

    modalities: list[str] | None
    sop_classes: list[str] | None
    station_names: list[str] | None
    calling_aets: list[str] | None
    institutions: list[str] | None
    study_older_than_days: int | None


class RuleCountsOut(BaseModel):
    """Instances this rule's conversion jobs handled (all replicas, all time)."""

    converted: int
    skipped: int
    failed: int


class RuleOut(BaseModel):
    """A rule as the file gives it, with its pause, backlog and counts."""

    model_config = ConfigDict(json_schema_extra={"examples": [RULE_EXAMPLE]})

    name: str
    target: str
    delay_seconds: float
    windows: list[WindowOut] = Field(description="Empty: conversions may start at any time.")
    conditions: ConditionsOut
    paused: bool
    paused_by: str | None
    paused_at: datetime.datetime | None
    waiting: int = Field(description="Series waiting for this rule's delay, window or resume.")
    queued: int = Field(description="Series whose conversion job has not ended yet.")
    instances: RuleCountsOut

    @classmethod
    def of(cls, status: RuleStatus) -> RuleOut:
        rule = status.rule
        return cls(
            name=rule.name,
            target=rule.target,
            delay_seconds=rule.delay.total_seconds(),
            windows=[WindowOut(start=w.start, end=w.end, days=list(w.days)) for w in rule.windows],
            conditions=ConditionsOut(
                modalities=rule.modalities,
                sop_classes=rule.sop_classes,
                station_names=rule.station_names,
                calling_aets=rule.calling_aets,
                institutions=rule.institutions,
                study_older_than_days=rule.study_older_than_days,
            ),
            paused=status.pause is not None,
            paused_by=status.pause.paused_by if status.pause else None,
            paused_at=status.pause.paused_at if status.pause else None,
            waiting=status.waiting,
            queued=status.queued,
            instances=RuleCountsOut(**status.counts),
        )


class FollowerOut(BaseModel):
    """Where the follower is in Orthanc's change log."""

    last_seq: int | None = Field(description="The last change taken (null: not started yet).")
    orthanc_last_seq: int | None = Field(description="Orthanc's latest change when last read.")
    lag_changes: int = Field(description="Changes not taken yet.")

    @classmethod
    def of(cls, state: FollowerState) -> FollowerOut:
        return cls(
            last_seq=state.last_seq,
            orthanc_last_seq=state.orthanc_last_seq,
            lag_changes=state.lag_changes,
        )


class RulesOut(BaseModel):
    """The rules file as loaded at start, each rule's state, and the follower's."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "enabled": True,
                    "timezone": "Europe/Brussels",
                    "rules": [RULE_EXAMPLE],
                    "follower": FOLLOWER_EXAMPLE,
                }
            ]
        }
    )

    enabled: bool = Field(description="False: no DICOMGATE_RULES_FILE; nothing is followed.")
    timezone: str | None
    rules: list[RuleOut]
    follower: FollowerOut

    @classmethod
    def of(
        cls, rules: RuleSet | None, statuses: list[RuleStatus], state: FollowerState
    ) -> RulesOut:
        return cls(
            enabled=rules is not None,
            timezone=rules.timezone if rules else None,
            rules=[RuleOut.of(s) for s in statuses],
            follower=FollowerOut.of(state),
        )


class BacklogItemOut(BaseModel):
    """A series Orthanc marked stable that a rule has not finished with."""

    series_orthanc_id: str
    study_instance_uid: str = Field(description="Empty until the series was first read.")
    rule: str | None = Field(description="Null: no rule decided on yet.")
    state: str = Field(description="waiting (delay, window, pause) or queued (its job runs).")
    stable_at: datetime.datetime
    due_at: datetime.datetime = Field(description="When it is decided on again (waiting).")
    job_id: int | None

    @classmethod
    def of(cls, row: RuleSeries) -> BacklogItemOut:
        return cls(
            series_orthanc_id=row.series_id,
            study_instance_uid=row.study_instance_uid,
            rule=row.rule,
            state=row.state,
            stable_at=row.stable_at,
            due_at=row.due_at,
            job_id=row.job_id,
        )


class BacklogOut(BaseModel):
    """The series waiting or queued, counted and listed (next due first)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "waiting": 1,
                    "queued": 0,
                    "follower": FOLLOWER_EXAMPLE,
                    "items": [
                        {
                            "series_orthanc_id": "97d44bf0-8c269dea-fbc2ad6d-7a5285d0-41459810",
                            "study_instance_uid": "1.2.826.0.1.3680043.8.498.1613811194847",
                            "rule": "ct-at-night",
                            "state": "waiting",
                            "stable_at": "2026-03-02T14:05:11Z",
                            "due_at": "2026-03-02T21:00:00Z",
                            "job_id": None,
                        }
                    ],
                }
            ]
        }
    )

    waiting: int
    queued: int
    follower: FollowerOut
    items: list[BacklogItemOut] = Field(description="At most `limit`, next due first.")
