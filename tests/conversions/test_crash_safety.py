"""Crash safety: the CLI killed with SIGKILL at random moments (with either journal), and Orthanc
restarted mid-run."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from dicomgate.codec.profiles import HTJ2K_SYNTAXES
from dicomgate.db import create_engine
from dicomgate.migrations import upgrade_database
from dicomgate.settings import Settings
from tests.builders import make_dataset, to_bytes
from tests.conversions.helpers import JOURNALS, decoded_crc32s, stored_files
from tests.databases import admin_execute, postgres_admin_url
from tests.orthanc_process import OrthancProcess

INSTANCES = 200
STUDIES = 4
KILLS = 20
PER_RUN_CAP = INSTANCES // (KILLS + 5)  # replacements a killed run may make at most (about)


def _replaced(lines: list[str]) -> int:
    return sum("Replaced instance" in line for line in list(lines))


def _generate(orthanc: OrthancProcess) -> dict[str, tuple[int, ...]]:
    """Store small distinct CT instances; return each SOP Instance UID's pixel CRC32s."""
    rng = np.random.default_rng(5)
    expected: dict[str, tuple[int, ...]] = {}
    for i in range(INSTANCES):
        pixels = rng.integers(0, 4096, size=(32, 32), dtype=np.uint16)
        ds = make_dataset(
            rows=32,
            columns=32,
            pixels=pixels,
            patient_id="CRASH",
            study_uid=f"1.2.826.0.1.3680043.10.1.{i % STUDIES}",
            series_uid=f"1.2.826.0.1.3680043.10.2.{i % STUDIES}",
            sop_uid=f"1.2.826.0.1.3680043.10.3.{i}",
            instance_number=i + 1,
        )
        data = to_bytes(ds)
        assert orthanc.store(data)["Status"] == "Success"
        expected[str(ds.SOPInstanceUID)] = decoded_crc32s(data)
    return expected


def _cli(
    orthanc: OrthancProcess, folder: Path, *args: str, database_url: str | None = None
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DICOMGATE_ORTHANC_URL": orthanc.url,
        "DICOMGATE_DATABASE_URL": database_url or f"sqlite+aiosqlite:///{folder / 'conv.db'}",
        "DICOMGATE_JOURNAL_DIR": str(folder / "journal"),
        "DICOMGATE_WORKERS": "2",
        "DICOMGATE_ORTHANC_TIMEOUT": "10",
        "DICOMGATE_ORTHANC_CONNECT_TIMEOUT": "2",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "dicomgate.cli", "convert-to-htj2k", "--all", *args],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so SIGKILL reaches the CLI and its codec workers together
    )


def _assert_all_converted(orthanc: OrthancProcess, expected: dict[str, tuple[int, ...]]) -> None:
    from io import BytesIO

    import pydicom

    stored = stored_files(orthanc)  # fails on a UID stored twice
    assert set(stored) == set(expected), (
        f"missing: {sorted(set(expected) - set(stored))[:5]}, extra: "
        f"{sorted(set(stored) - set(expected))[:5]}"
    )
    for uid, data in stored.items():
        ds = pydicom.dcmread(BytesIO(data), stop_before_pixels=True)
        assert ds.file_meta.TransferSyntaxUID in HTJ2K_SYNTAXES, uid
        assert decoded_crc32s(data) == expected[uid], f"pixels of {uid} changed"


def _wait_for(proc: subprocess.Popen[str], text: str) -> tuple[list[str], threading.Thread]:
    """Collect the process's stderr in a thread; return once ``text`` appeared (or it ended)."""
    assert proc.stderr is not None
    stream = proc.stderr
    lines: list[str] = []
    seen = threading.Event()

    def pump() -> None:
        for line in stream:
            lines.append(line)
            if text in line:
                seen.set()
        seen.set()

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    seen.wait(timeout=60)
    return lines, thread


@pytest.fixture
def db_folder(tmp_path: Path, conv_settings: object) -> Path:
    """``tmp_path`` with the migrated DB (made by ``conv_settings``) and the journal folder."""
    return tmp_path


@pytest.fixture(params=JOURNALS)
def database_url(request: pytest.FixtureRequest, db_folder: Path) -> Iterator[str]:
    """SQLite (the folder journal), then a fresh PostgreSQL database (the database journal)."""
    if request.param == "folder":
        yield f"sqlite+aiosqlite:///{db_folder / 'conv.db'}"
        return
    name = f"dicomgate_crash_{uuid.uuid4().hex[:12]}"
    asyncio.run(admin_execute(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(postgres_admin_url()).set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        asyncio.run(admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _pending_in_database(url: str) -> tuple[int, int]:
    """Entries left in the database journal, and large objects left in the database."""

    async def count() -> tuple[int, int]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                entries = await conn.scalar(text("SELECT count(*) FROM replace_journal"))
                objects = await conn.scalar(text("SELECT count(*) FROM pg_largeobject_metadata"))
            return int(entries or 0), int(objects or 0)
        finally:
            await engine.dispose()

    return asyncio.run(count())


@pytest.mark.slow
@pytest.mark.parametrize("any_orthanc", [False], indirect=True, ids=["overwrite-off"])
def test_kill_9_at_random_moments_then_resume(
    conv_orthanc: OrthancProcess, db_folder: Path, database_url: str
) -> None:
    if database_url.startswith("postgresql"):
        upgrade_database(Settings(orthanc_url=conv_orthanc.url, database_url=database_url))
    expected = _generate(conv_orthanc)
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    outputs: list[str] = []
    for _ in range(KILLS):
        proc = _cli(
            conv_orthanc, db_folder, "--resume", "--concurrency", "2", database_url=database_url
        )
        lines, pump = _wait_for(proc, "Replaced instance")  # workers warm, work under way
        # A random moment, but before this run replaces more than its share: the job must still
        # be unfinished after every kill (a fast machine would otherwise finish it in the loop).
        deadline = time.monotonic() + rng.uniform(0.0, 0.5)
        while time.monotonic() < deadline and _replaced(lines) < PER_RUN_CAP:
            time.sleep(0.002)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pump.join(timeout=10)
        outputs.append("".join(lines))
    replaced_before_final = sum(err.count("Replaced instance") for err in outputs)

    final = _cli(conv_orthanc, db_folder, "--resume", database_url=database_url)
    out, err = final.communicate(timeout=120)

    assert final.returncode == 0, f"seed {seed}\n{out}\n{err[-3000:]}"
    assert replaced_before_final >= KILLS, f"seed {seed}: kills did not land mid-run"
    assert "Conversion job 1 " in out, f"seed {seed}: the first job was not resumed\n{out}"
    this_run = int(re.search(r"\((\d+) this run\)", out).group(1))  # type: ignore[union-attr]
    assert this_run < INSTANCES, (
        f"seed {seed}: the final run started over\n{out}\n{outputs[-1][-2000:]}"
    )
    assert "Failed: 0" in out
    # Each instance counted once, as converted by this job, whatever moment a kill hit.
    assert f"Converted: {INSTANCES}\n" in out, f"seed {seed}\n{out}"
    assert "Already HTJ2K: 0\n" in out, f"seed {seed}\n{out}"
    _assert_all_converted(conv_orthanc, expected)
    assert list((db_folder / "journal").glob("*.json")) == []
    assert list((db_folder / "journal").glob("*.dcm")) == []
    if database_url.startswith("postgresql"):
        assert _pending_in_database(database_url) == (0, 0)


@pytest.mark.slow
@pytest.mark.parametrize("any_orthanc", [True], indirect=True, ids=["overwrite-on"])
def test_orthanc_stopped_mid_run_then_resume(conv_orthanc: OrthancProcess, db_folder: Path) -> None:
    expected = _generate(conv_orthanc)
    proc = _cli(conv_orthanc, db_folder, "--concurrency", "1")
    lines, pump = _wait_for(proc, "Replaced instance")
    # Killed, not stopped: a graceful stop lets Orthanc finish the requests it holds and took up
    # to 6 s, long enough for a fast machine to finish all 200 instances before it went away.
    stopping = time.monotonic()
    conv_orthanc.kill()
    stop_took = time.monotonic() - stopping
    out = proc.communicate(timeout=120)[0]
    pump.join(timeout=10)
    err = "".join(lines)
    try:
        assert proc.returncode == 3, f"Orthanc took {stop_took:.1f} s to stop\n{out}\n{err[-3000:]}"
        assert "Stopped: Orthanc is unreachable" in out
        assert "run again with --resume" in out
    finally:
        conv_orthanc.start()

    final = _cli(conv_orthanc, db_folder, "--resume")
    out, err = final.communicate(timeout=120)

    assert final.returncode == 0, f"{out}\n{err[-3000:]}"
    assert "Conversion job 1 " in out  # the interrupted job was resumed, not a new one
    assert f"Converted: {INSTANCES}\n" in out and "Already HTJ2K: 0\n" in out, out
    _assert_all_converted(conv_orthanc, expected)
