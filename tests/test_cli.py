"""The ``dicomgate`` command line: every command registered, each from its own module."""

from __future__ import annotations

import argparse
import subprocess
import sys

from dicomgate.cli import COMMAND_MODULES, build_parser


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def test_each_module_registers_the_command_it_is_listed_under() -> None:
    for command in COMMAND_MODULES:
        registered = _commands(build_parser([command])) - {"serve", "openapi", "db"}
        assert registered == {command}


def test_without_a_known_command_every_command_is_registered() -> None:
    everything = {"serve", "openapi", "db", *COMMAND_MODULES}
    assert _commands(build_parser()) == everything
    assert _commands(build_parser(["--help"])) == everything
    assert _commands(build_parser(["no-such-command"])) == everything


def test_transcode_does_not_load_the_database_and_web_app() -> None:
    probe = (
        "import sys; from dicomgate.cli import build_parser; "
        "build_parser(['transcode', 'in', '-o', 'out']); "
        "print(sorted(m for m in ('sqlalchemy', 'fastapi', 'alembic') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
