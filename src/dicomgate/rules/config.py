"""The compression rules file (``DICOMGATE_RULES_FILE``, TOML): its shape, read and checked once.

The anchor is dcm4chee-arc-light's archive compression rules: conditions on what arrived, a
delay, a schedule and a target syntax. A bad file stops the service at start with every problem
named by its place in the file (``rules[2].delay: …``), never half-applied.
"""

from __future__ import annotations

import datetime
import hashlib
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dicomgate.dicom.uids import is_uid
from dicomgate.errors import ConfigurationError

# Names go into URLs (/api/ris/rules/{name}/pause/), metric labels and job origins: keep them
# plain and bounded.
RULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # date.weekday() order
RuleTarget = Literal["htj2k", "htj2k-rpcl"]
MAX_DELAY = datetime.timedelta(days=365)


def _minutes(text: str) -> int:
    """``"HH:MM"`` (00:00 … 24:00) → minutes after midnight."""
    match = re.fullmatch(r"([01][0-9]|2[0-4]):([0-5][0-9])", text)
    if match is None or (match.group(1) == "24" and match.group(2) != "00"):
        raise ValueError(f"{text!r} is not a time of day as HH:MM (00:00 to 24:00)")
    return int(match.group(1)) * 60 + int(match.group(2))


def _uids(values: list[str]) -> list[str]:
    for value in values:
        if not is_uid(value):
            raise ValueError(f"{value!r} is not a UID (PS3.5 §9.1: digits and dots, ≤ 64)")
    return values


Patterns = Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]], Field(min_length=1)]


class TimeWindow(BaseModel):
    """When a rule may start conversions: from ``start`` to ``end`` (local time) on ``days``.

    An ``end`` at or before ``start`` runs past midnight, into the next day (the window
    belongs to the day it starts on).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str = Field(default="00:00", description="HH:MM, local time in the rules' timezone.")
    end: str = Field(default="24:00", description="HH:MM; at or before start: the next day.")
    days: list[Day] = Field(default_factory=lambda: list(DAYS), min_length=1)

    @field_validator("start", "end")
    @classmethod
    def _time_of_day(cls, value: str) -> str:
        _minutes(value)
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> TimeWindow:
        if self.start_minute == self.end_minute % 1440 and self.end_minute != 1440:
            raise ValueError(
                f"start and end are both {self.start}: a window must have a length "
                "(00:00 to 24:00 is the whole day)"
            )
        return self

    @property
    def start_minute(self) -> int:
        return _minutes(self.start)

    @property
    def end_minute(self) -> int:
        return _minutes(self.end)

    @property
    def weekdays(self) -> frozenset[int]:
        return frozenset(DAYS.index(day) for day in self.days)


class Rule(BaseModel):
    """One compression rule: which series and instances, after how long, when, into what."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Unique; letters, digits, '.', '_', '-' (at most 64).")
    target: RuleTarget = Field(
        default="htj2k", description="htj2k (…4.201) or htj2k-rpcl (…4.202), both lossless."
    )
    delay: datetime.timedelta = Field(
        default=datetime.timedelta(0),
        description="How long after Orthanc marks the series stable (ISO 8601 like PT30M, "
        "or seconds).",
    )
    windows: list[TimeWindow] = Field(
        default_factory=list, description="When conversions may start (none: at any time)."
    )
    # Conditions (all given ones must hold; a list matches any of its patterns, * and ?
    # wildcards; names compare case-insensitively).
    modalities: Patterns | None = None
    sop_classes: Annotated[list[str], AfterValidator(_uids), Field(min_length=1)] | None = None
    station_names: Patterns | None = None
    calling_aets: Patterns | None = None
    institutions: Patterns | None = None
    study_older_than_days: int | None = Field(default=None, ge=0, le=100_000)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if RULE_NAME.fullmatch(value) is None:
            raise ValueError(
                f"{value!r} is not a rule name: 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        return value

    @field_validator("delay")
    @classmethod
    def _bounded_delay(cls, value: datetime.timedelta) -> datetime.timedelta:
        if value < datetime.timedelta(0) or value > MAX_DELAY:
            raise ValueError("the delay must be between 0 and 365 days")
        return value

    @property
    def origin(self) -> str:
        """How the conversion jobs this rule creates name their origin."""
        return f"rule:{self.name}"


class RuleSet(BaseModel):
    """The whole file: the time zone of the windows and study ages, and the rules in order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = Field(default="UTC", description="IANA name, e.g. Europe/Brussels.")
    rules: list[Rule] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a known IANA time zone") from None
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> RuleSet:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"two rules are named {rule.name!r}; names must be unique")
            seen.add(rule.name)
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def digest(self) -> str:
        """A fingerprint of the rules as read (another file, another digest)."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()

    def get(self, name: str) -> Rule | None:
        """The rule with this name, if any."""
        return next((rule for rule in self.rules if rule.name == name), None)


def _place(loc: tuple[int | str, ...], data: object) -> str:
    """``("rules", 1, "delay")`` → ``rules[1] ("ct-nights").delay``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int) and isinstance(data, dict):
        rules = data.get("rules")
        if isinstance(rules, list) and loc[1] < len(rules) and isinstance(rules[loc[1]], dict):
            name = rules[loc[1]].get("name")
            if isinstance(name, str):
                text = text.replace(f"rules[{loc[1]}]", f"rules[{loc[1]}] ({name!r})", 1)
    return text or "(file)"


def parse_rules(text: str, *, source: str) -> RuleSet:
    """Parse and check a rules file's text; ConfigurationError naming every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"The rules file {source} is not valid TOML: {exc}") from None
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"  {_place(tuple(error['loc']), data)}: {error['msg']}" for error in exc.errors()
        ]
        raise ConfigurationError(
            f"The rules file {source} is not valid:\n" + "\n".join(problems)
        ) from None


def load_rules(path: Path | None) -> RuleSet | None:
    """The rules in ``path`` (DICOMGATE_RULES_FILE), or None when no file is configured."""
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(
            f"DICOMGATE_RULES_FILE names {path}, which does not exist"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"The rules file {path} cannot be read: {exc}") from None
    return parse_rules(text, source=str(path))
