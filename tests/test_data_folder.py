"""One data folder for the CLI and the service, and one message for an unmigrated database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dicomgate.migrations import head_revisions
from dicomgate.settings import Settings

LOCATION_VARIABLES = ("DICOMGATE_DATA_DIR", "DICOMGATE_DATABASE_URL", "DICOMGATE_JOURNAL_DIR")


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``dicomgate …`` as a user runs it in ``cwd``, with no location set in the environment."""
    clean = {k: v for k, v in os.environ.items() if k not in LOCATION_VARIABLES}
    return subprocess.run(
        [sys.executable, "-m", "dicomgate.cli", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_database_and_journal_default_to_the_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in LOCATION_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.data_dir == tmp_path.resolve() / "dicomgate-data"
    assert settings.database_url == f"sqlite+aiosqlite:///{settings.data_dir}/dicomgate.db"
    assert settings.journal_dir == settings.data_dir / "journal"
    moved = Settings(_env_file=None, data_dir=tmp_path / "elsewhere")  # type: ignore[call-arg]
    assert moved.database_url == f"sqlite+aiosqlite:///{tmp_path}/elsewhere/dicomgate.db"
    assert moved.journal_dir == tmp_path / "elsewhere" / "journal"


def unmigrated_message(folder: Path) -> str:
    head = ", ".join(sorted(head_revisions(Settings(_env_file=None))))  # type: ignore[call-arg]
    return (
        f"dicomgate: The database {folder / 'dicomgate-data' / 'dicomgate.db'} has no dicomgate "
        f"schema (needs revision {head}); run `dicomgate db upgrade` (from the same folder, or "
        "with the same DICOMGATE_DATA_DIR or DICOMGATE_DATABASE_URL)"
    )


DATABASE_COMMANDS = [
    ["serve", "--port", "9"],
    ["apikey", "list"],
    ["apikey", "create", "--name", "router", "--scopes", "dicom:write"],
    ["convert-to-htj2k", "--all"],
    ["patients", "import", "patients.csv"],
]


@pytest.mark.parametrize("args", DATABASE_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_every_database_command_says_the_same_thing_without_a_migrated_database(
    tmp_path: Path, args: list[str]
) -> None:
    (tmp_path / "patients.csv").write_text("patient_id\nP1\n")
    done = cli(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == unmigrated_message(tmp_path.resolve())
    assert done.stdout == ""
    assert not (tmp_path / "dicomgate-data").exists()  # looking created nothing


def test_db_upgrade_creates_the_folder_the_other_commands_then_use(tmp_path: Path) -> None:
    upgraded = cli("db", "upgrade", cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    database = tmp_path.resolve() / "dicomgate-data" / "dicomgate.db"
    assert upgraded.stdout.strip() == f"database {database} at revision head"
    assert "setup plugin" not in upgraded.stderr  # alembic's plugin chatter stays out
    created = cli("apikey", "create", "--name", "router", "--scopes", "dicom:write", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    listed = cli("apikey", "list", cwd=tmp_path)
    assert listed.returncode == 0 and "router" in listed.stdout


def test_an_unreachable_database_is_one_line_too(tmp_path: Path) -> None:
    done = cli(
        "apikey",
        "list",
        cwd=tmp_path,
        env={"DICOMGATE_DATABASE_URL": "postgresql+asyncpg://dicomgate:secret@127.0.0.1:9/x"},
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "dicomgate: The database postgresql+asyncpg://dicomgate:***@127.0.0.1:9/x cannot be "
        "reached: ConnectionRefusedError"
    )
