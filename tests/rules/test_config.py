"""The rules file: what a valid one gives, and the clear message every kind of mistake gets
(at start, before anything is served)."""

from __future__ import annotations

import argparse
import datetime
from collections.abc import Callable
from pathlib import Path

import pytest

from dicomgate.app import create_app
from dicomgate.cli import build_parser
from dicomgate.errors import ConfigurationError
from dicomgate.rules.config import load_rules, parse_rules
from dicomgate.settings import Settings

EXAMPLE = """
timezone = "Europe/Brussels"

[[rules]]
name = "ct-at-night"
modalities = ["CT", "PT"]
calling_aets = ["CT_*"]
delay = "PT30M"
target = "htj2k-rpcl"
windows = [{ start = "22:00", end = "06:00", days = ["mon", "tue", "wed", "thu", "fri"] },
           { days = ["sat", "sun"] }]

[[rules]]
name = "old-imports"
study_older_than_days = 365
sop_classes = ["1.2.840.10008.5.1.4.1.1.2"]
station_names = ["IMPORT"]
institutions = ["Hospital A"]
delay = 600
"""


def test_a_valid_file_gives_every_field() -> None:
    rules = parse_rules(EXAMPLE, source="rules.toml")
    assert rules.timezone == "Europe/Brussels"
    assert [r.name for r in rules.rules] == ["ct-at-night", "old-imports"]
    night, old = rules.rules
    assert night.delay == datetime.timedelta(minutes=30)
    assert night.target == "htj2k-rpcl"
    assert night.modalities == ["CT", "PT"]
    assert night.calling_aets == ["CT_*"]
    assert (night.windows[0].start_minute, night.windows[0].end_minute) == (22 * 60, 6 * 60)
    assert night.windows[0].weekdays == frozenset({0, 1, 2, 3, 4})
    assert (night.windows[1].start, night.windows[1].end) == ("00:00", "24:00")
    assert night.origin == "rule:ct-at-night"
    assert old.delay == datetime.timedelta(seconds=600)
    assert old.target == "htj2k"
    assert old.study_older_than_days == 365
    assert old.sop_classes == ["1.2.840.10008.5.1.4.1.1.2"]
    assert rules.get("old-imports") is old
    assert rules.get("missing") is None


def test_an_empty_file_is_no_rules_in_utc() -> None:
    rules = parse_rules("", source="empty.toml")
    assert (rules.timezone, rules.rules) == ("UTC", [])


BAD_FILES = [
    pytest.param(
        'timezone = "Mars/Olympus"',
        "timezone: Value error, 'Mars/Olympus' is not a known IANA time zone",
        id="unknown-zone",
    ),
    pytest.param(
        '[[rules]]\nname = "a b"',
        "rules[0] ('a b').name: Value error, 'a b' is not a rule name",
        id="bad-name",
    ),
    pytest.param(
        '[[rules]]\nname = "x"\n[[rules]]\nname = "x"',
        "two rules are named 'x'; names must be unique",
        id="duplicate-name",
    ),
    pytest.param(
        '[[rules]]\nname = "ct"\nmodality = ["CT"]',
        "rules[0] ('ct').modality: Extra inputs are not permitted",
        id="misspelt-condition",
    ),
    pytest.param(
        '[[rules]]\nname = "ct"\ndelay = "half an hour"',
        "rules[0] ('ct').delay: Input should be a valid timedelta",
        id="bad-delay",
    ),
    pytest.param(
        '[[rules]]\nname = "ct"\ndelay = -5',
        "rules[0] ('ct').delay: Value error, the delay must be between 0 and 365 days",
        id="negative-delay",
    ),
    pytest.param(
        '[[rules]]\nname = "ct"\ntarget = "jpeg"',
        "rules[0] ('ct').target: Input should be 'htj2k' or 'htj2k-rpcl'",
        id="bad-target",
    ),
    pytest.param(
        '[[rules]]\nname = "ct"\nwindows = [{ start = "25:00" }]',
        "rules[0] ('ct').windows[0].start: Value error, '25:00' is not a time of day",
        id="bad-time",
    ),
    pytest.param(
        '[[rules]]\nname = "ct"\nwindows = [{ start = "08:00", end = "08:00" }]',
        "rules[0] ('ct').windows[0]: Value error, start and end are both 08:00",
        id="empty-window",
    ),
    pytest.param(
        '[[rules]]\nname = "ct"\nwindows = [{ days = ["monday"] }]',
        "rules[0] ('ct').windows[0].days[0]: Input should be 'mon', 'tue'",
        id="bad-day",
    ),
    pytest.param(
        '[[rules]]\nname = "ct"\nsop_classes = ["CT Image Storage"]',
        "rules[0] ('ct').sop_classes: Value error, 'CT Image Storage' is not a UID",
        id="bad-uid",
    ),
    pytest.param(
        '[[rules]]\nname = "ct"\nmodalities = []',
        "rules[0] ('ct').modalities: List should have at least 1 item",
        id="empty-condition",
    ),
    pytest.param(
        '[[rules]]\nname = "ct"\nstudy_older_than_days = -1',
        "rules[0] ('ct').study_older_than_days: Input should be greater than or equal to 0",
        id="negative-age",
    ),
    pytest.param(
        "[[rules]\nname = 1",
        "is not valid TOML",
        id="not-toml",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_a_bad_file_is_refused_with_its_place_named(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_rules(text, source="/etc/dicomgate/rules.toml")
    assert "/etc/dicomgate/rules.toml" in raised.value.message
    assert message in raised.value.message


def test_every_problem_is_listed_at_once() -> None:
    text = '[[rules]]\nname = "ct"\ndelay = -1\ntarget = "x"\n[[rules]]\nname = "!"'
    with pytest.raises(ConfigurationError) as raised:
        parse_rules(text, source="rules.toml")
    lines = raised.value.message.splitlines()
    assert lines[0] == "The rules file rules.toml is not valid:"
    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        "rules[0] ('ct').target",
        "rules[0] ('ct').delay",
        "rules[1] ('!').name",
    ]


def test_no_file_configured_is_no_rules() -> None:
    assert load_rules(None) is None


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"names .*nowhere\.toml, which does not exist"):
        load_rules(tmp_path / "nowhere.toml")


def test_the_service_refuses_to_start_on_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('[[rules]]\nname = "ct"\ndelay = "soon"\n')
    with pytest.raises(ConfigurationError, match=r"rules\[0\] \('ct'\)\.delay"):
        create_app(Settings(auth_enabled=False, rules_file=path))


def check(argv: list[str]) -> int:
    """``dicomgate rules check …`` as the CLI runs it (without main's logging set-up, which
    would leave the test's captured stderr as the root logger's stream)."""
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace, Settings], int] = args.func
    return handler(args, Settings())


def test_the_check_command_says_why_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('[[rules]]\nname = "ct"\nwindows = [{ start = "7:00" }]\n')
    monkeypatch.setenv("DICOMGATE_RULES_FILE", str(path))
    monkeypatch.setenv("DICOMGATE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    monkeypatch.chdir(tmp_path)
    assert check(["rules", "check"]) == 2
    err = capsys.readouterr().err
    assert f"The rules file {path} is not valid" in err
    assert "rules[0] ('ct').windows[0].start: Value error, '7:00' is not a time of day" in err


def test_the_check_command_says_what_each_rule_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(EXAMPLE)
    monkeypatch.chdir(tmp_path)
    assert check(["rules", "check", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: 2 rules, time zone Europe/Brussels",
        "  ct-at-night: Modality CT, PT and calling AE CT_* → htj2k-rpcl, 1800 s after the "
        "series is stable, 22:00-06:00 mon,tue,wed,thu,fri; 00:00-24:00 sat,sun",
        "  old-imports: SOP Class 1.2.840.10008.5.1.4.1.1.2 and Station Name IMPORT and "
        "Institution Hospital A and study older than 365 days → htj2k, 600 s after the series "
        "is stable, any time",
    ]
