"""``dicomgate rules check [FILE]``: read and check a compression rules file, as the service
will at start, and say what each rule does."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dicomgate.errors import ConfigurationError
from dicomgate.rules.config import Rule, load_rules
from dicomgate.settings import Settings


def describe(rule: Rule) -> str:
    """One line per rule: its conditions, delay, windows and target."""
    conditions = [
        f"{label} {', '.join(values)}"
        for label, values in (
            ("Modality", rule.modalities),
            ("SOP Class", rule.sop_classes),
            ("Station Name", rule.station_names),
            ("calling AE", rule.calling_aets),
            ("Institution", rule.institutions),
        )
        if values is not None
    ]
    if rule.study_older_than_days is not None:
        conditions.append(f"study older than {rule.study_older_than_days} days")
    windows = (
        "; ".join(f"{w.start}-{w.end} {','.join(w.days)}" for w in rule.windows)
        if rule.windows
        else "any time"
    )
    return (
        f"{rule.name}: {' and '.join(conditions) or 'every series'} → {rule.target}, "
        f"{rule.delay.total_seconds():g} s after the series is stable, {windows}"
    )


def _check(args: argparse.Namespace, settings: Settings) -> int:
    path: Path | None = args.file or settings.rules_file
    if path is None:
        print("dicomgate: no rules file: give one or set DICOMGATE_RULES_FILE", file=sys.stderr)
        return 2
    try:
        rules = load_rules(path)
    except ConfigurationError as exc:
        print(f"dicomgate: {exc.message}", file=sys.stderr)
        return 2
    assert rules is not None
    print(f"{path}: {len(rules.rules)} rules, time zone {rules.timezone}")
    for rule in rules.rules:
        print(f"  {describe(rule)}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("rules", help="compression rules for what arrives in Orthanc")
    sub = parser.add_subparsers(dest="rules_command", required=True)
    check = sub.add_parser("check", help="check a rules file (default: DICOMGATE_RULES_FILE)")
    check.add_argument("file", nargs="?", type=Path, default=None)
    check.set_defaults(func=_check)
