"""What is decided for a due series, against a real Orthanc and database: which instances are
queued, and when a series waits or is forgotten."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dicomgate.conversions.models import ConversionJob, ConversionOutcome
from dicomgate.db import session_scope
from dicomgate.kit.clock import utcnow
from dicomgate.rules.config import RuleSet, parse_rules
from dicomgate.rules.dispatch import Forget, Queue, Wait, decide
from dicomgate.rules.repository import DueSeries
from dicomgate.runtime import Runtime, open_runtime
from tests.builders import make_dataset, to_bytes, to_htj2k
from tests.orthanc_process import OrthancProcess
from tests.rules.helpers import rules_settings

NOW = utcnow()
RULES = parse_rules(
    """
[[rules]]
name = "ct"
modalities = ["CT"]
delay = "PT1H"
""",
    source="test",
)


@pytest.fixture
async def runtime(arrivals: OrthancProcess, tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = await rules_settings(arrivals, tmp_path, "", rules_follower=False)
    async with open_runtime(settings) as rt:
        yield rt


def store_series(orthanc: OrthancProcess, count: int, *, modality: str = "CT") -> list[str]:
    """Store a series; the Orthanc IDs of its series and then of its instances."""
    first = make_dataset(modality=modality)
    ids = [orthanc.store(to_bytes(first))]
    for number in range(2, count + 1):
        ds = make_dataset(
            modality=modality,
            study_uid=first.StudyInstanceUID,
            series_uid=first.SeriesInstanceUID,
            instance_number=number,
        )
        ids.append(orthanc.store(to_bytes(ds)))
    return [ids[0]["ParentSeries"], *(answer["ID"] for answer in ids)]


def due(series_id: str, *, stable: datetime.timedelta, job_running: bool = False) -> DueSeries:
    return DueSeries(1, 1, series_id, NOW - stable, None, job_running)


async def decided(
    runtime: Runtime, row: DueSeries, *, rules: RuleSet = RULES, paused: set[str] | None = None
) -> Forget | Wait | Queue:
    return await decide(runtime, rules, row, now=NOW, paused=paused or set())


async def earlier_job(runtime: Runtime, outcomes: dict[str, str], origin: str = "rule:ct") -> None:
    """A finished job of a rule with these outcomes (Orthanc ID → outcome)."""
    async with session_scope(runtime.sessions) as session:
        job = ConversionJob(selector="series", selector_value="1.2.3", state="completed")
        job.origin = origin
        session.add(job)
        await session.flush()
        for orthanc_id, outcome in outcomes.items():
            session.add(ConversionOutcome(job_id=job.id, orthanc_id=orthanc_id, outcome=outcome))


async def test_a_series_whose_delay_has_passed_is_queued_whole(
    runtime: Runtime, arrivals: OrthancProcess
) -> None:
    series, *instances = store_series(arrivals, 3)
    decision = await decided(runtime, due(series, stable=datetime.timedelta(hours=2)))
    assert isinstance(decision, Queue)
    assert (decision.rule.name, decision.series_id) == ("ct", series)
    assert sorted(decision.instance_ids) == sorted(instances)


async def test_before_its_delay_it_waits_until_the_delay_ends(
    runtime: Runtime, arrivals: OrthancProcess
) -> None:
    series, *_ = store_series(arrivals, 1)
    decision = await decided(runtime, due(series, stable=datetime.timedelta(minutes=10)))
    assert isinstance(decision, Wait)
    assert (decision.until, decision.rule) == (NOW + datetime.timedelta(minutes=50), "ct")


async def test_outside_its_window_it_waits_for_the_opening(
    runtime: Runtime, arrivals: OrthancProcess
) -> None:
    opens = (NOW + datetime.timedelta(hours=3)).replace(second=0, microsecond=0)
    rules = parse_rules(
        f"""
[[rules]]
name = "later"
windows = [{{ start = "{opens:%H:%M}", end = "{opens + datetime.timedelta(hours=1):%H:%M}" }}]
""",
        source="test",
    )
    series, *_ = store_series(arrivals, 1, modality="MR")
    decision = await decided(runtime, due(series, stable=datetime.timedelta(hours=1)), rules=rules)
    assert isinstance(decision, Wait)
    assert (decision.until, decision.rule, decision.why) == (opens, "later", "outside its windows")


async def test_a_paused_rule_holds_the_series(runtime: Runtime, arrivals: OrthancProcess) -> None:
    series, *_ = store_series(arrivals, 1)
    decision = await decided(
        runtime, due(series, stable=datetime.timedelta(hours=2)), paused={"ct"}
    )
    assert isinstance(decision, Wait)
    assert (decision.until, decision.rule, decision.why) == (NOW, "ct", "paused")


async def test_no_rule_no_series_or_nothing_to_convert_is_forgotten(
    runtime: Runtime, arrivals: OrthancProcess
) -> None:
    long_ago = datetime.timedelta(hours=2)
    us, *_ = store_series(arrivals, 1, modality="US")
    assert await decided(runtime, due(us, stable=long_ago)) == Forget("no rule takes it")
    assert await decided(runtime, due("0" * 40, stable=long_ago)) == Forget("the series is gone")
    converted = to_htj2k(make_dataset())
    series = arrivals.store(to_bytes(converted))["ParentSeries"]
    assert await decided(runtime, due(series, stable=long_ago)) == Forget("nothing left to convert")


async def test_while_its_last_job_runs_it_waits(runtime: Runtime, arrivals: OrthancProcess) -> None:
    series, *_ = store_series(arrivals, 1)
    decision = await decided(
        runtime, due(series, stable=datetime.timedelta(hours=2), job_running=True)
    )
    assert isinstance(decision, Wait)
    assert decision.why == "its last conversion job has not ended"


async def test_instances_skipped_before_or_failing_three_times_are_left_out(
    runtime: Runtime, arrivals: OrthancProcess
) -> None:
    series, skipped, failed_twice, failed_thrice, fresh = store_series(arrivals, 4)
    await earlier_job(
        runtime, {skipped: "skipped", failed_twice: "failed", failed_thrice: "failed"}
    )
    await earlier_job(runtime, {failed_twice: "failed", failed_thrice: "failed"})
    await earlier_job(runtime, {failed_thrice: "failed"})
    await earlier_job(runtime, {fresh: "skipped"}, origin="manual")  # not a rule's job
    decision = await decided(runtime, due(series, stable=datetime.timedelta(hours=2)))
    assert isinstance(decision, Queue)
    assert sorted(decision.instance_ids) == sorted([failed_twice, fresh])
