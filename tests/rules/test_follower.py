"""The follower takes each of Orthanc's changes once, on SQLite and on PostgreSQL, even with
several followers at once; it starts at Orthanc's latest change and survives a new change log."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from dicomgate.db import session_scope
from dicomgate.rules.follower import follow_changes_once, follower_state
from dicomgate.rules.models import RulesCursor, RuleSeries
from dicomgate.runtime import Runtime, open_runtime
from tests.builders import make_dataset, to_bytes
from tests.databases import KINDS, fresh_database
from tests.orthanc_process import OrthancProcess
from tests.rules.helpers import eventually, latest_change, rules_settings


@pytest.fixture(params=KINDS)
async def follower_runtime(
    request: pytest.FixtureRequest, arrivals: OrthancProcess, tmp_path: Path
) -> AsyncIterator[Runtime]:
    async with fresh_database(request.param, tmp_path, prefix="rules") as url:
        settings = await rules_settings(
            arrivals, tmp_path, "", database_url=url, rules_batch_size=3
        )
        async with open_runtime(settings) as runtime:
            yield runtime


def stable_series_changes(orthanc: OrthancProcess, since: int) -> Counter[str]:
    """How many StableSeries changes Orthanc logged per series after ``since``."""
    found: Counter[str] = Counter()
    with httpx.Client(base_url=orthanc.url, timeout=30) as client:
        while True:
            page = client.get("/changes", params={"since": since, "limit": 1000}).json()
            for change in page["Changes"]:
                if change["ChangeType"] == "StableSeries":
                    found[change["ID"]] += 1
            since = page["Last"]
            if page["Done"]:
                return found


async def noted(runtime: Runtime) -> dict[str, int]:
    """Series ID → how many times the follower noted it stable (its version)."""
    async with session_scope(runtime.sessions) as session:
        rows = (await session.scalars(select(RuleSeries))).all()
    return {row.series_id: row.version for row in rows}


async def test_the_first_run_starts_at_orthancs_latest_change(
    follower_runtime: Runtime, arrivals: OrthancProcess
) -> None:
    arrivals.store(to_bytes(make_dataset()))  # before the follower ever ran: not its business
    latest = latest_change(arrivals)
    assert await follow_changes_once(follower_runtime) == 0
    state = await follower_state(follower_runtime)
    assert (state.last_seq, state.orthanc_last_seq, state.lag_changes) == (latest, latest, 0)
    assert await noted(follower_runtime) == {}


async def test_each_change_is_taken_once_by_concurrent_followers(
    follower_runtime: Runtime, arrivals: OrthancProcess
) -> None:
    await follow_changes_once(follower_runtime)
    start = (await follower_state(follower_runtime)).last_seq
    assert start is not None
    studies = [make_dataset(patient_id=f"P{n}") for n in range(6)]
    for ds in studies:
        arrivals.store(to_bytes(ds))

    # A series stored into again is marked stable again: two StableSeries for it.
    async def orthanc_marked_all_stable() -> Counter[str] | None:
        found = stable_series_changes(arrivals, start)
        return found if len(found) == len(studies) else None

    await eventually(orthanc_marked_all_stable, what="Orthanc to mark every series stable")
    again = make_dataset(
        patient_id="P0",
        study_uid=studies[0].StudyInstanceUID,
        series_uid=studies[0].SeriesInstanceUID,
        instance_number=2,
    )
    arrivals.store(to_bytes(again))

    async def marked_again() -> Counter[str] | None:
        found = stable_series_changes(arrivals, start)
        return found if sum(found.values()) == len(studies) + 1 else None

    expected = await eventually(marked_again, what="the series stored into to be stable again")

    # Four followers at once, batches of three changes, until caught up.
    async def follower() -> int:
        taken = 0
        for _ in range(100):
            got = await follow_changes_once(follower_runtime)
            taken += got
            if got == 0 and (await follower_state(follower_runtime)).lag_changes == 0:
                return taken
        return taken

    taken = await asyncio.gather(*(follower() for _ in range(4)))
    latest = latest_change(arrivals)
    assert sum(taken) == latest - start  # every change once, by one follower or another
    assert (await follower_state(follower_runtime)).last_seq == latest
    assert await noted(follower_runtime) == dict(expected)  # versions: 2 for the one, 1 else


async def test_a_new_change_log_is_followed_from_its_start(
    follower_runtime: Runtime, arrivals: OrthancProcess
) -> None:
    arrivals.store(to_bytes(make_dataset()))  # four changes: a new instance, series, …
    await follow_changes_once(follower_runtime)
    # As if Orthanc's database had been replaced: the cursor is past its latest change.
    async with session_scope(follower_runtime.sessions) as session:
        await session.execute(update(RulesCursor).values(last_seq=10**9))
    assert await follow_changes_once(follower_runtime) == 0
    assert (await follower_state(follower_runtime)).last_seq == 0
    # From the start of the log (Orthanc drops a deleted resource's changes: only the new
    # instance's are left), three at a time.
    assert await follow_changes_once(follower_runtime) == 3
