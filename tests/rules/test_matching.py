"""Which rule takes a series and which instances, and when its windows are open: tables."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

import pytest

from dicomgate.rules.config import Rule, parse_rules
from dicomgate.rules.matching import (
    InstanceFacts,
    SeriesFacts,
    choose_rule,
    next_opening,
    parse_da,
    series_conditions_hold,
    window_open,
)

TODAY = datetime.date(2026, 3, 4)
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"


def rule(**fields: object) -> Rule:
    return Rule.model_validate({"name": "r", **fields})


SERIES_CASES = [
    ({}, SeriesFacts(), True),
    ({"modalities": ["CT", "MR"]}, SeriesFacts(modality="MR"), True),
    ({"modalities": ["CT"]}, SeriesFacts(modality="ct"), True),  # CS: compared upper case
    ({"modalities": ["CT"]}, SeriesFacts(modality="CTX"), False),
    ({"modalities": ["C?"]}, SeriesFacts(modality="CR"), True),
    ({"station_names": ["CT-*"]}, SeriesFacts(station_name="ct-room-2 "), True),
    ({"station_names": ["CT-*"]}, SeriesFacts(station_name=""), False),
    ({"institutions": ["Hospital A"]}, SeriesFacts(institution="HOSPITAL A"), True),
    ({"institutions": ["Hospital A"]}, SeriesFacts(institution="Hospital B"), False),
    ({"study_older_than_days": 30}, SeriesFacts(study_date=datetime.date(2026, 2, 1)), True),
    ({"study_older_than_days": 30}, SeriesFacts(study_date=datetime.date(2026, 2, 2)), False),
    ({"study_older_than_days": 0}, SeriesFacts(study_date=TODAY), False),
    ({"study_older_than_days": 0}, SeriesFacts(study_date=None), False),  # no date: no match
    ({"modalities": ["CT"], "institutions": ["A"]}, SeriesFacts("CT", "", "B"), False),
]


@pytest.mark.parametrize(("fields", "facts", "holds"), SERIES_CASES)
def test_series_conditions(fields: dict[str, object], facts: SeriesFacts, holds: bool) -> None:
    assert series_conditions_hold(rule(**fields), facts, today=TODAY) is holds


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20240101", datetime.date(2024, 1, 1)),
        (" 20240229 ", datetime.date(2024, 2, 29)),
        ("20230229", None),
        ("2024-01-01", None),
        ("", None),
    ],
)
def test_study_date_is_a_da_value(text: str, expected: datetime.date | None) -> None:
    assert parse_da(text) == expected


CT = InstanceFacts("ct-1", sop_class_uid=CT_IMAGE, calling_aet="CT_SCANNER")
SR = InstanceFacts("sr-1", sop_class_uid=DOSE_SR, calling_aet="CT_SCANNER")
MR = InstanceFacts("mr-1", sop_class_uid="1.2.840.10008.5.1.4.1.1.4", calling_aet="MR_1")


def test_the_first_rule_whose_conditions_hold_takes_the_series_and_the_instances_it_meets() -> None:
    rules = [
        rule(name="mr", modalities=["MR"]),
        rule(name="ct-images", sop_classes=[CT_IMAGE]),
        rule(name="rest"),
    ]
    choice = choose_rule(rules, SeriesFacts(modality="CT"), [CT, SR], today=TODAY)
    assert choice is not None
    assert choice.rule.name == "ct-images"
    assert choice.instances == (CT,)


def test_a_rule_none_of_whose_instances_meet_it_passes_the_series_on() -> None:
    rules = [
        rule(name="from-ct", calling_aets=["CT_*"]),
        rule(name="from-mr", calling_aets=["mr_*"]),
    ]
    choice = choose_rule(rules, SeriesFacts(modality="MR"), [MR], today=TODAY)
    assert choice is not None
    assert (choice.rule.name, choice.instances) == ("from-mr", (MR,))


def test_no_rule_takes_what_no_rule_meets() -> None:
    rules = [rule(name="ct", modalities=["CT"]), rule(name="aet", calling_aets=["X"])]
    assert choose_rule(rules, SeriesFacts(modality="MR"), [MR], today=TODAY) is None


def test_a_rule_without_instance_conditions_takes_every_instance() -> None:
    choice = choose_rule([rule(name="all")], SeriesFacts(), [CT, SR, MR], today=TODAY)
    assert choice is not None
    assert choice.instances == (CT, SR, MR)


# --- Time windows: Europe/Brussels, 2026-03-04 is a Wednesday ----------------------------------
RULES = parse_rules(
    """
timezone = "Europe/Brussels"
[[rules]]
name = "nights"
windows = [{ start = "22:00", end = "06:00", days = ["mon", "tue", "wed", "thu", "fri"] }]
[[rules]]
name = "weekend"
windows = [{ days = ["sat", "sun"] }]
[[rules]]
name = "always"
""",
    source="test",
)
ZONE = ZoneInfo("Europe/Brussels")


def at(text: str) -> datetime.datetime:
    """A local time in Brussels, as UTC."""
    local = datetime.datetime.fromisoformat(text).replace(tzinfo=ZONE)
    return local.astimezone(datetime.UTC)


WINDOW_CASES = [
    ("nights", "2026-03-04T21:59", False),
    ("nights", "2026-03-04T22:00", True),
    ("nights", "2026-03-05T05:59", True),  # Wednesday's night runs into Thursday
    ("nights", "2026-03-05T06:00", False),
    ("nights", "2026-03-07T03:00", True),  # Friday's night, on Saturday morning
    ("nights", "2026-03-07T23:00", False),  # Saturday evening: no window starts then
    ("nights", "2026-03-09T02:00", False),  # Monday morning: Sunday has no night
    ("weekend", "2026-03-07T00:00", True),
    ("weekend", "2026-03-08T23:59", True),
    ("weekend", "2026-03-09T00:00", False),
    ("always", "2026-03-04T12:00", True),
]


@pytest.mark.parametrize(("name", "local", "open_"), WINDOW_CASES)
def test_windows_in_the_rules_time_zone(name: str, local: str, open_: bool) -> None:
    found = RULES.get(name)
    assert found is not None
    assert window_open(found, at(local), ZONE) is open_


@pytest.mark.parametrize(
    ("name", "local", "opening"),
    [
        ("nights", "2026-03-04T12:00", "2026-03-04T22:00"),
        ("nights", "2026-03-07T12:00", "2026-03-09T22:00"),  # Saturday: next is Monday night
        ("weekend", "2026-03-04T12:00", "2026-03-07T00:00"),
        ("nights", "2026-03-27T23:30", "2026-03-30T22:00"),  # across the change to summer time
    ],
)
def test_the_next_opening(name: str, local: str, opening: str) -> None:
    found = RULES.get(name)
    assert found is not None
    assert next_opening(found, at(local), ZONE) == at(opening)
