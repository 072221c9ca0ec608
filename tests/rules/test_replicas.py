"""Several replicas on one PostgreSQL follow Orthanc's changes: one killed (kill -9) again and
again while following loses no change, and nothing is converted twice."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dicomgate.conversions import service
from dicomgate.db import session_scope
from dicomgate.rules import repository
from dicomgate.rules.follower import follower_state
from dicomgate.runtime import open_runtime
from dicomgate.settings import Settings
from tests.databases import fresh_database
from tests.orthanc_process import OrthancProcess
from tests.rules.helpers import (
    converted_outcomes,
    cstore,
    eventually,
    restabilised,
    rule_jobs,
    rules_settings,
    series_of,
    transfer_syntaxes,
)

REPO = Path(__file__).resolve().parents[2]
SERIES = 16
KILLS = 6
UP_FOR = 3.0  # seconds a follower runs before it may be killed (it needs about 2 to start)
RULE = '[[rules]]\nname = "everything"\n'


class Followers:
    """Two follower processes; either may be killed and started again."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.env = {
            **os.environ,
            "DICOMGATE_ORTHANC_URL": settings.orthanc_url,
            "DICOMGATE_DATABASE_URL": settings.database_url,
            "DICOMGATE_RULES_FILE": str(settings.rules_file),
            "DICOMGATE_RULES_BATCH_SIZE": "4",  # many small batches: many chances to die mid-one
            "DICOMGATE_RULES_POLL_INTERVAL": "0.05",
            "DICOMGATE_WORKERS": "1",
            "DICOMGATE_LOG_LEVEL": "WARNING",
        }
        self.log = log.open("ab")
        self.procs: list[subprocess.Popen[bytes]] = [self._start(), self._start()]
        self.started = [time.monotonic(), time.monotonic()]
        self.kills = 0

    def _start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.rules.follower_process"],
            env=self.env,
            cwd=REPO,
            stdout=self.log,
            stderr=self.log,
        )

    def kill_one(self, rng: random.Random) -> None:
        """kill -9 one that has been following for a while, whatever it is doing, and start a
        new one in its place (none such yet: nothing)."""
        up = [i for i, at in enumerate(self.started) if time.monotonic() - at > UP_FOR]
        if not up:
            return
        index = rng.choice(up)
        assert self.procs[index].poll() is None, "a follower died by itself: see its log"
        self.procs[index].kill()
        self.procs[index].wait()
        self.kills += 1
        self.procs[index] = self._start()
        self.started[index] = time.monotonic()

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
        self.log.close()


@contextmanager
def followers(settings: Settings, log: Path) -> Iterator[Followers]:
    group = Followers(settings, log)
    try:
        yield group
    finally:
        group.stop()


@pytest.fixture
async def postgres_url(tmp_path: Path) -> AsyncIterator[str]:
    async with fresh_database("postgresql", tmp_path, prefix="rules") as url:
        yield url


@pytest.mark.slow
@pytest.mark.postgres
async def test_a_follower_killed_while_following_loses_no_change_and_converts_nothing_twice(
    arrivals: OrthancProcess, tmp_path: Path, postgres_url: str
) -> None:
    settings = await rules_settings(arrivals, tmp_path, RULE, database_url=postgres_url)
    arriving = [series_of(2, patient_id=f"P{n}") for n in range(SERIES)]
    rng = random.Random(16)
    async with open_runtime(settings) as runtime:
        with followers(settings, tmp_path / "followers.log") as group:

            async def started() -> int | None:
                return (await follower_state(runtime)).last_seq

            await eventually(started, what="a follower's first look at /changes")

            async def send() -> None:
                for series in arriving:
                    await asyncio.to_thread(cstore, arrivals, series, calling_aet="MODALITY1")
                    await asyncio.sleep(rng.uniform(0.2, 0.8))

            sending = asyncio.ensure_future(send())

            async def every_series_queued() -> bool | None:
                if group.kills < KILLS or not sending.done():
                    await asyncio.sleep(rng.uniform(0.1, 0.6))
                    group.kill_one(rng)
                jobs = await rule_jobs(settings.database_url)
                queued = {series for job in jobs for series in job.series_ids or ()}
                enough = group.kills >= KILLS and sending.done()
                return True if enough and len(queued) >= SERIES else None

            await eventually(every_series_queued, what="every series to be queued", within=240)
            await sending

            # Each series in exactly one job: no change lost, none taken twice.
            jobs = await rule_jobs(settings.database_url)
            per_series = Counter(series for job in jobs for series in job.series_ids or ())
            assert len(per_series) == SERIES
            assert set(per_series.values()) == {1}

            # Run them (here; in production whatever runs jobs). The followers go on and see
            # each series become stable again after its replacement: no job for that.
            for job in jobs:
                await service.run_job(runtime, job.id)
            converted_series = [
                series
                for job in await rule_jobs(settings.database_url)
                for series in job.series_ids or ()
            ]

            async def decided_again() -> bool | None:
                after = await asyncio.to_thread(restabilised, arrivals, converted_series)
                if after is None:
                    return None
                cursor = (await follower_state(runtime)).last_seq or 0
                async with session_scope(runtime.sessions) as session:
                    backlog = await repository.backlog_counts(session)
                complete = len(after) == SERIES and cursor >= max(after.values())
                return True if complete and not backlog else None

            await eventually(decided_again, what="the re-stabilised series to be decided on")
            kills = group.kills

    assert kills >= KILLS
    assert len(await rule_jobs(settings.database_url)) == SERIES
    converted = Counter(await converted_outcomes(settings.database_url))
    assert len(converted) == 2 * SERIES
    assert set(converted.values()) == {1}
    for series in arriving:
        assert set(transfer_syntaxes(arrivals, series[0].SeriesInstanceUID).values()) == {
            "1.2.840.10008.1.2.4.201"
        }
