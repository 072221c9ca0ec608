"""Which rule takes a series, which of its instances, and when: pure functions over facts.

Rules are tried in file order. A rule takes a series when its series conditions hold (Modality,
Station Name, Institution Name, study age) and, if it has instance conditions (SOP Class, calling
AE title), at least one instance meets them; the first such rule takes the series, and converts
those of its instances that meet its instance conditions. Patterns use ``*`` and ``?``; names
compare case-insensitively (Modality is a CS value, PS3.5 §6.2: upper case anyway).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from zoneinfo import ZoneInfo

from dicomgate.rules.config import Rule, TimeWindow

MINUTES_PER_DAY = 1440


@dataclass(frozen=True)
class SeriesFacts:
    """What Orthanc lists for a series and its study (main DICOM tags)."""

    modality: str = ""
    station_name: str = ""
    institution: str = ""
    study_date: datetime.date | None = None


@dataclass(frozen=True)
class InstanceFacts:
    """What Orthanc records for an instance: its metadata, and the stored transfer syntax."""

    orthanc_id: str
    sop_class_uid: str = ""
    calling_aet: str = ""  # Orthanc's RemoteAET metadata: the C-STORE SCU's AE title


def parse_da(value: str) -> datetime.date | None:
    """A DA value (PS3.5 §6.2: YYYYMMDD) as a date; None when empty or not a date."""
    text = value.strip()
    try:
        return datetime.datetime.strptime(text, "%Y%m%d").date() if len(text) == 8 else None
    except ValueError:
        return None


def _any(patterns: Iterable[str] | None, value: str, *, fold: bool) -> bool:
    if patterns is None:
        return True
    text = value.strip()
    if fold:
        return any(fnmatchcase(text.upper(), p.strip().upper()) for p in patterns)
    return any(fnmatchcase(text, p.strip()) for p in patterns)


def series_conditions_hold(rule: Rule, facts: SeriesFacts, *, today: datetime.date) -> bool:
    """Modality, Station Name, Institution Name, study age: each given condition holds.

    A study age condition needs a Study Date: a study without one does not match it.
    """
    if rule.study_older_than_days is not None:
        if facts.study_date is None:
            return False
        if (today - facts.study_date).days <= rule.study_older_than_days:
            return False
    return (
        _any(rule.modalities, facts.modality, fold=True)
        and _any(rule.station_names, facts.station_name, fold=True)
        and _any(rule.institutions, facts.institution, fold=True)
    )


def has_instance_conditions(rule: Rule) -> bool:
    return rule.sop_classes is not None or rule.calling_aets is not None


def instance_conditions_hold(rule: Rule, facts: InstanceFacts) -> bool:
    """SOP Class UID (exact) and calling AE title: each given condition holds."""
    if rule.sop_classes is not None and facts.sop_class_uid.strip() not in rule.sop_classes:
        return False
    return _any(rule.calling_aets, facts.calling_aet, fold=True)


@dataclass(frozen=True)
class Choice:
    """The rule that takes a series, and the instances it converts."""

    rule: Rule
    instances: tuple[InstanceFacts, ...]


def choose_rule(
    rules: Sequence[Rule],
    series: SeriesFacts,
    instances: Sequence[InstanceFacts],
    *,
    today: datetime.date,
) -> Choice | None:
    """The first rule that takes the series (see the module's docstring), or None."""
    for rule in rules:
        if not series_conditions_hold(rule, series, today=today):
            continue
        taken = tuple(i for i in instances if instance_conditions_hold(rule, i))
        if taken or not has_instance_conditions(rule):
            return Choice(rule, taken)
    return None


def candidate_rules(
    rules: Sequence[Rule], series: SeriesFacts, *, today: datetime.date
) -> list[Rule]:
    """The rules whose series conditions hold (one of them takes the series, or none)."""
    return [r for r in rules if series_conditions_hold(r, series, today=today)]


# --- Time windows ------------------------------------------------------------------------------
def _open_in(window: TimeWindow, local: datetime.datetime) -> bool:
    minute = local.hour * 60 + local.minute
    today, yesterday = local.weekday(), (local.weekday() - 1) % 7
    start, end = window.start_minute, window.end_minute
    if start < end:
        return today in window.weekdays and start <= minute < end
    # Past midnight: the evening part belongs to today, the morning part to yesterday's window.
    return (today in window.weekdays and minute >= start) or (
        yesterday in window.weekdays and minute < end
    )


def window_open(rule: Rule, now: datetime.datetime, zone: ZoneInfo) -> bool:
    """True when the rule may start a conversion at ``now`` (no windows: always)."""
    if not rule.windows:
        return True
    local = now.astimezone(zone)
    return any(_open_in(window, local) for window in rule.windows)


def next_opening(rule: Rule, now: datetime.datetime, zone: ZoneInfo) -> datetime.datetime:
    """The first moment after ``now`` at which one of the rule's windows opens (UTC)."""
    local = now.astimezone(zone)
    best: datetime.datetime | None = None
    for offset in range(8):
        day = local.date() + datetime.timedelta(days=offset)
        for window in rule.windows:
            if day.weekday() not in window.weekdays:
                continue
            hour, minute = divmod(window.start_minute, 60)
            opening = datetime.datetime.combine(day, datetime.time(hour, minute), tzinfo=zone)
            opening = opening.astimezone(datetime.UTC)
            if opening > now and (best is None or opening < best):
                best = opening
    # Every window has at least one day, so one opens within eight days.
    return best if best is not None else now + datetime.timedelta(days=1)
