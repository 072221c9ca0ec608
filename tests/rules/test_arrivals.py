"""What modalities send by C-STORE is converted by the rules, in the running service: after its
delay, only what the rule takes, pixel-identical; an instance stored later into a converted
series too (dcm4chee-arc-light #4973); outside the rule's windows, or while it is paused, the
series waits."""

from __future__ import annotations

import asyncio
import datetime
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from dicomgate.app import create_app
from dicomgate.conversions.models import ConversionJob
from dicomgate.kit.clock import utcnow
from dicomgate.rules.follower import follower_state
from dicomgate.runtime import Runtime
from dicomgate.settings import Settings
from tests.builders import from_bytes, make_dataset, to_bytes
from tests.conversions.helpers import decoded_crc32s
from tests.orthanc_process import OrthancProcess
from tests.rules.helpers import (
    converted_outcomes,
    cstore,
    eventually,
    restabilised,
    rule_jobs,
    rules_settings,
    series_of,
    stable_marks,
    transfer_syntaxes,
)

HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
CT_RULE = """
[[rules]]
name = "ct-from-modalities"
modalities = ["CT"]
calling_aets = ["MODALITY*"]
delay = "PT2S"
"""


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The service with its lifespan (the rules loop runs), once it follows Orthanc's changes."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        runtime: Runtime = app.state.runtime

        async def started() -> int | None:
            return (await follower_state(runtime)).last_seq

        await eventually(started, what="the follower's first look at /changes")
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://dicomgate.test") as c:
            yield app, c


def orthanc_id(orthanc: OrthancProcess, level: str, uid_tag: str, uid: str) -> str:
    found = httpx.post(
        f"{orthanc.url}/tools/find", json={"Level": level, "Query": {uid_tag: uid}}, timeout=30
    ).json()
    assert len(found) == 1
    return str(found[0])


def served_by_uid(orthanc: OrthancProcess, ds: Dataset) -> bytes:
    instance = orthanc_id(orthanc, "Instance", "SOPInstanceUID", ds.SOPInstanceUID)
    return httpx.get(f"{orthanc.url}/instances/{instance}/file", timeout=30).content


def stable_changes(orthanc: OrthancProcess, series_id: str) -> list[tuple[int, datetime.datetime]]:
    """(seq, date) of every StableSeries change Orthanc logged for a series."""
    return stable_marks(orthanc).get(series_id, [])


async def finished_jobs(settings: Settings, count: int) -> list[ConversionJob] | None:
    jobs = await rule_jobs(settings.database_url)
    done = [job for job in jobs if job.state == "completed"]
    return jobs if len(done) >= count else None


async def quiet(client: httpx.AsyncClient, orthanc: OrthancProcess, series_id: str) -> None:
    """Wait until Orthanc marked the series stable after its last replacement, the follower
    took that change, and the backlog is empty: nothing more will happen to it."""
    await eventually(lambda: _latest_finished(client), what="every rule job to have ended")

    async def settled() -> bool | None:
        after = await asyncio.to_thread(restabilised, orthanc, [series_id])
        backlog = (await client.get("/api/ris/rules/backlog/")).json()
        follower = backlog["follower"]
        caught_up = after is not None and follower["last_seq"] >= after[series_id]
        return True if caught_up and not backlog["items"] else None

    await eventually(settled, what="the stability after the conversion to be decided on")


async def _latest_finished(client: httpx.AsyncClient) -> datetime.datetime | None:
    jobs = (await client.get("/api/ris/conversions/")).json()["jobs"]
    if any(job["state"] in ("pending", "running") for job in jobs):
        return None
    ends = [datetime.datetime.fromisoformat(job["finished_at"]) for job in jobs]
    return max(ends).replace(microsecond=0) if ends else None


async def test_what_modalities_send_is_converted_after_its_delay(
    arrivals: OrthancProcess, tmp_path: Path
) -> None:
    settings = await rules_settings(arrivals, tmp_path, CT_RULE)
    ct, mr, elsewhere = series_of(3), series_of(2, modality="MR"), series_of(2)
    async with running(settings) as (_, client):
        await asyncio.to_thread(cstore, arrivals, ct + mr, calling_aet="MODALITY1")
        await asyncio.to_thread(cstore, arrivals, elsewhere, calling_aet="WORKSTATION")
        (job,) = await eventually(lambda: finished_jobs(settings, 1), what="the CT's job")
        series_id = orthanc_id(arrivals, "Series", "SeriesInstanceUID", ct[0].SeriesInstanceUID)
        await quiet(client, arrivals, series_id)
        overview = (await client.get("/api/ris/rules/")).json()
        metrics_text = (await client.get("/metrics")).text

    # Only the CT series from a modality: converted, to HTJ2K, pixel for pixel.
    assert set(transfer_syntaxes(arrivals, ct[0].SeriesInstanceUID).values()) == {HTJ2K_LOSSLESS}
    for ds in ct:
        assert decoded_crc32s(served_by_uid(arrivals, ds)) == decoded_crc32s(to_bytes(ds))
    for kept in (mr, elsewhere):
        assert set(transfer_syntaxes(arrivals, kept[0].SeriesInstanceUID).values()) == {
            ExplicitVRLittleEndian
        }
        for ds in kept:  # every element as sent (the file meta is Orthanc's own)
            assert from_bytes(served_by_uid(arrivals, ds)) == ds

    # One ordinary job, over that series, named after the rule, created after the delay.
    assert [j.id for j in await rule_jobs(settings.database_url)] == [job.id]
    assert (job.origin, job.selector, job.selector_value) == (
        "rule:ct-from-modalities",
        "series",
        ct[0].StudyInstanceUID,
    )
    assert job.series_ids == [series_id]
    assert (job.converted, job.skipped, job.failed, job.target_syntax) == (3, 0, 0, "htj2k")
    first_stable = stable_changes(arrivals, series_id)[0][1]
    assert job.created_at >= first_stable + datetime.timedelta(seconds=2)

    # The API and the metrics say what the rule did, and that nothing waits.
    (rule,) = overview["rules"]
    assert (rule["name"], rule["waiting"], rule["queued"]) == ("ct-from-modalities", 0, 0)
    assert rule["instances"] == {"converted": 3, "skipped": 0, "failed": 0}
    assert overview["follower"]["lag_changes"] == 0
    assert (
        'dicomgate_rules_instances{outcome="converted",rule="ct-from-modalities"} 3.0'
        in metrics_text
    )
    assert "dicomgate_rules_lag_changes 0.0" in metrics_text


async def test_an_instance_stored_later_into_a_converted_series_is_converted(
    arrivals: OrthancProcess, tmp_path: Path
) -> None:
    settings = await rules_settings(arrivals, tmp_path, CT_RULE)
    first = series_of(2)
    report = structured_report(first[0])  # in the same series: no pixels, so skipped once
    later = make_dataset(
        rows=32,
        columns=32,
        study_uid=first[0].StudyInstanceUID,
        series_uid=first[0].SeriesInstanceUID,
        instance_number=3,
    )
    async with running(settings) as (_, client):
        await asyncio.to_thread(cstore, arrivals, [*first, report], calling_aet="MODALITY1")
        await eventually(lambda: finished_jobs(settings, 1), what="the first job")
        series_id = orthanc_id(arrivals, "Series", "SeriesInstanceUID", first[0].SeriesInstanceUID)
        await quiet(client, arrivals, series_id)
        assert transfer_syntaxes(arrivals, first[0].SeriesInstanceUID) == {
            first[0].SOPInstanceUID: HTJ2K_LOSSLESS,
            first[1].SOPInstanceUID: HTJ2K_LOSSLESS,
            report.SOPInstanceUID: report.file_meta.TransferSyntaxUID,
        }

        await asyncio.to_thread(cstore, arrivals, [later], calling_aet="MODALITY1")
        jobs = await eventually(lambda: finished_jobs(settings, 2), what="the second job")
        await quiet(client, arrivals, series_id)

    assert transfer_syntaxes(arrivals, first[0].SeriesInstanceUID)[later.SOPInstanceUID] == (
        HTJ2K_LOSSLESS
    )
    assert decoded_crc32s(served_by_uid(arrivals, later)) == decoded_crc32s(to_bytes(later))
    # Two jobs (none for the stabilities the replacements caused, the report skipped once),
    # each instance converted once.
    assert len(await rule_jobs(settings.database_url)) == 2
    assert [(j.converted, j.skipped, j.skipped_by_reason) for j in jobs] == [
        (2, 1, {"no_pixel_data": 1}),
        (1, 0, {}),
    ]
    later_id = orthanc_id(arrivals, "Instance", "SOPInstanceUID", later.SOPInstanceUID)
    assert jobs[1].instance_ids == [later_id]
    assert set(Counter(await converted_outcomes(settings.database_url)).values()) == {1}


def structured_report(image: Dataset) -> Dataset:
    """pydicom's SR test file, moved into the image's patient, study and series."""
    report = dcmread(get_testdata_file("test-SR.dcm"))
    report.PatientID, report.PatientName = image.PatientID, image.PatientName
    report.StudyInstanceUID = image.StudyInstanceUID
    report.SeriesInstanceUID = image.SeriesInstanceUID
    report.Modality = "CT"  # Orthanc keeps the series' first instance's tags anyway
    return report


def _window(start: datetime.datetime, hours: int) -> str:
    """A rules file whose one rule may start from ``start`` (UTC) for ``hours``."""
    end = start + datetime.timedelta(hours=hours)
    return f"""
[[rules]]
name = "nightly"
delay = 0
windows = [{{ start = "{start:%H:%M}", end = "{end:%H:%M}" }}]
"""


async def test_outside_its_window_a_series_waits_until_it_opens(
    arrivals: OrthancProcess, tmp_path: Path
) -> None:
    now = utcnow().replace(second=0, microsecond=0)
    opens = now + datetime.timedelta(hours=6)
    closed = await rules_settings(arrivals, tmp_path, _window(opens, 1))
    ct = series_of(2)
    async with running(closed) as (_, client):
        await asyncio.to_thread(cstore, arrivals, ct, calling_aet="MODALITY1")

        async def waiting_for_its_window() -> dict[str, object] | None:
            items = (await client.get("/api/ris/rules/backlog/")).json()["items"]
            decided = [i for i in items if i["rule"] == "nightly"]
            return decided[0] if decided else None

        item = await eventually(waiting_for_its_window, what="the series to wait for 'nightly'")
    assert item["state"] == "waiting"
    assert datetime.datetime.fromisoformat(str(item["due_at"])) == opens
    assert item["study_instance_uid"] == ct[0].StudyInstanceUID
    assert await rule_jobs(closed.database_url) == []
    assert set(transfer_syntaxes(arrivals, ct[0].SeriesInstanceUID).values()) == {
        ExplicitVRLittleEndian
    }

    # The window opens (here: the service restarts with a window open now): it is converted.
    opened = closed.model_copy(update={"rules_file": tmp_path / "open.toml"})
    (tmp_path / "open.toml").write_text(_window(now - datetime.timedelta(hours=1), 2))
    async with running(opened):
        (job,) = await eventually(lambda: finished_jobs(opened, 1), what="the job once open")
    assert job.converted == 2
    assert set(transfer_syntaxes(arrivals, ct[0].SeriesInstanceUID).values()) == {HTJ2K_LOSSLESS}


async def test_a_paused_rule_waits_on_every_replica_until_resumed(
    arrivals: OrthancProcess, tmp_path: Path
) -> None:
    settings = await rules_settings(arrivals, tmp_path, CT_RULE)
    ct = series_of(1)
    async with running(settings) as (_, client):
        paused = await client.post("/api/ris/rules/ct-from-modalities/pause/")
        assert paused.status_code == 200
        assert (paused.json()["paused"], paused.json()["paused_by"]) == (
            True,
            "anonymous (authentication disabled)",
        )
        await asyncio.to_thread(cstore, arrivals, ct, calling_aet="MODALITY1")

        async def held() -> dict[str, object] | None:
            items = (await client.get("/api/ris/rules/backlog/")).json()["items"]
            return items[0] if items and items[0]["rule"] == "ct-from-modalities" else None

        await eventually(held, what="the series to be held by the paused rule")
        assert await rule_jobs(settings.database_url) == []

        resumed = await client.post("/api/ris/rules/ct-from-modalities/resume/")
        assert (resumed.status_code, resumed.json()["paused"]) == (200, False)
        (job,) = await eventually(lambda: finished_jobs(settings, 1), what="the job once resumed")
        audit = (await client.get("/api/ris/audit/", params={"action": "rules"})).json()
    assert job.converted == 1
    assert [(e["action"], e["status_code"], e["resource"]) for e in audit["events"]] == [
        ("rules", 200, {"name": "ct-from-modalities"}),
        ("rules", 200, {"name": "ct-from-modalities"}),
    ]
