"""What Orthanc keeps on the series, study and patient survives a conversion that empties them.

Deleting the last instance of a series removes the series (and its study and patient when they
become empty); the re-post re-creates them bare. The patient's protection (exempt from Orthanc's
recycling) and the user metadata on each parent must come back — after a normal replacement, a
rollback and every crash window — and a big series must cost no extra call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from io import BytesIO
from pathlib import Path

import httpx
import pydicom
import pytest

from dicomgate.codec.profiles import HTJ2K_SYNTAXES
from dicomgate.codec.transcode import TranscodeOptions, transcode
from dicomgate.conversions.carry import (
    detect_carry_over,
    parents_at_risk,
    read_parents,
    removed_parents,
)
from dicomgate.conversions.journal import JournalEntry, ParentCarried, ReplaceJournal
from dicomgate.conversions.journals import Journal, open_journal
from dicomgate.conversions.plan import (
    InstanceRef,
    make_selection,
    select_studies,
    study_instances,
)
from dicomgate.conversions.replace import recover_journal, replace_instance
from dicomgate.conversions.service import run_job, start_or_resume
from dicomgate.errors import ReplaceFailed
from dicomgate.kit.hashing import sha256
from dicomgate.orthanc_models import DeleteAnswer
from dicomgate.runtime import Runtime
from tests.builders import make_dataset, to_bytes
from tests.conversions.helpers import delete_instance, served_file
from tests.orthanc_calls import record_orthanc_calls
from tests.orthanc_process import OrthancProcess

STUDY = "1.2.826.0.1.3680043.10.9.700"
SERIES = "1.2.826.0.1.3680043.10.9.701"
PATIENT = "PARENTS1"
# User metadata (Orthanc's UserMetadata applies to every level) on each parent, distinct values.
PARENT_VALUES = {
    "series": {"Comment": "series note", "2000": "series slot"},
    "studies": {"Comment": "study note ü\nsecond line", "2000": "study slot"},
    "patients": {"Comment": "patient note", "2001": "patient slot"},
}
USER_NAMES = {"Comment", "2000", "2001"}
PARENT_KEYS = {"series": "ParentSeries", "studies": "ParentStudy", "patients": "ParentPatient"}


@pytest.fixture
def runtime(journal_runtime: Runtime) -> Runtime:
    """Every test here on both journals: SQLite's folder, PostgreSQL's table."""
    return journal_runtime


def _store_study(orthanc: OrthancProcess, instances: int) -> tuple[list[bytes], dict[str, str]]:
    """One patient with one study of one series of ``instances`` instances; (files, parent IDs)."""
    files = [
        to_bytes(
            make_dataset(
                rows=16,
                columns=16,
                patient_id=PATIENT,
                study_uid=STUDY,
                series_uid=SERIES,
                sop_uid=f"{SERIES}.{n}",
                instance_number=n,
            )
        )
        for n in range(1, instances + 1)
    ]
    answers = [orthanc.store(data) for data in files]
    assert {a["Status"] for a in answers} == {"Success"}
    return files, {level: answers[0][key] for level, key in PARENT_KEYS.items()}


def _decorate(orthanc: OrthancProcess, parents: dict[str, str]) -> None:
    """Protect the patient and put user metadata on the series, study and patient."""
    with httpx.Client(base_url=orthanc.url, timeout=30) as client:
        client.put(f"/patients/{parents['patients']}/protected", content=b"1").raise_for_status()
        for level, values in PARENT_VALUES.items():
            for name, value in values.items():
                url = f"/{level}/{parents[level]}/metadata/{name}"
                client.put(url, content=value.encode()).raise_for_status()


def _protected(orthanc: OrthancProcess, patient_id: str) -> str:
    response = httpx.get(f"{orthanc.url}/patients/{patient_id}/protected", timeout=30)
    response.raise_for_status()
    return response.text


def _patients(orthanc: OrthancProcess) -> list[str]:
    result: list[str] = httpx.get(f"{orthanc.url}/patients", timeout=30).json()
    return result


def _user_metadata(orthanc: OrthancProcess, level: str, orthanc_id: str) -> dict[str, str]:
    response = httpx.get(
        f"{orthanc.url}/{level}/{orthanc_id}/metadata", params={"expand": ""}, timeout=30
    )
    response.raise_for_status()
    return {k: v for k, v in response.json().items() if k in USER_NAMES}


def _assert_parents_kept(orthanc: OrthancProcess, parents: dict[str, str]) -> None:
    assert _protected(orthanc, parents["patients"]) == "1"
    for level, values in PARENT_VALUES.items():
        assert _user_metadata(orthanc, level, parents[level]) == values, level


def _syntax(data: bytes | None) -> str:
    assert data is not None
    return str(pydicom.dcmread(BytesIO(data), stop_before_pixels=True).file_meta.TransferSyntaxUID)


async def _refs(runtime: Runtime) -> list[InstanceRef]:
    studies = await select_studies(runtime.orthanc, make_selection(study=STUDY))
    return await study_instances(runtime.orthanc, studies[0])


async def _convert_study(runtime: Runtime, *, concurrency: int) -> int:
    job_id = await start_or_resume(
        runtime, selection=make_selection(study=STUDY), dry_run=False, resume=False
    )
    summary = await run_job(runtime, job_id, concurrency=concurrency)
    assert (summary.failed, summary.errors) == (0, [])
    return summary.converted


class TestConversionKeepsParents:
    async def test_a_protected_patient_with_one_instance_stays_protected_with_its_metadata(
        self, conv_orthanc: OrthancProcess, runtime: Runtime
    ) -> None:
        _, parents = _store_study(conv_orthanc, instances=1)
        _decorate(conv_orthanc, parents)
        ref = (await _refs(runtime))[0]

        assert await _convert_study(runtime, concurrency=2) == 1

        _assert_parents_kept(conv_orthanc, parents)
        assert _syntax(served_file(conv_orthanc, ref.orthanc_id)) in HTJ2K_SYNTAXES
        assert await open_journal(runtime.engine, runtime.settings.journal_dir).entries() == []

    async def test_a_series_the_workers_empty_together_keeps_its_parents(
        self, conv_orthanc: OrthancProcess, runtime: Runtime
    ) -> None:
        # Two instances, two workers: both may be deleted at the same moment, so whichever
        # delete empties the series (and study and patient) must bring their state back.
        # Slowing each re-post makes that moment certain.
        _, parents = _store_study(conv_orthanc, instances=2)
        _decorate(conv_orthanc, parents)
        deletes: list[object] = []

        async def slow_post(request: httpx.Request) -> None:
            if request.method == "POST" and request.url.path == "/instances":
                await asyncio.sleep(0.5)

        async def delete_answer(response: httpx.Response) -> None:
            if response.request.method == "DELETE":
                await response.aread()
                deletes.append(response.json()["RemainingAncestor"])

        runtime.http.event_hooks["request"].append(slow_post)
        runtime.http.event_hooks["response"].append(delete_answer)

        assert await _convert_study(runtime, concurrency=2) == 2

        assert None in deletes  # one delete emptied the patient while the other was in flight
        _assert_parents_kept(conv_orthanc, parents)

    async def test_a_bigger_series_costs_no_extra_call_and_keeps_everything(
        self, conv_orthanc: OrthancProcess, runtime: Runtime
    ) -> None:
        _, parents = _store_study(conv_orthanc, instances=3)
        _decorate(conv_orthanc, parents)
        calls = record_orthanc_calls(runtime)

        assert await _convert_study(runtime, concurrency=2) == 3

        requests = [tuple(call.split(" ", 1)) for call in calls]

        parent_calls = [
            (method, path)
            for method, path in requests
            if path.startswith(("/patients/", "/series/"))
            or (path.startswith("/studies/") and not path.endswith(("/instances", "/series")))
        ]
        assert parent_calls == []  # neither read nor written: the series never became empty
        # The study is listed once: its instances, and its series (their modality).
        assert [p for _, p in requests if p.startswith("/studies/")] == [
            f"/studies/{parents['studies']}/instances",
            f"/studies/{parents['studies']}/series",
        ]
        assert [path for method, path in requests if method == "PUT"] == []
        # Per instance: header, file, metadata, DELETE, POST, and the verifying GET of the new
        # file as an attachment, whose answer names its UUID too (its syntax is recorded for
        # DICOMweb with that UUID): no call of its own for it.
        per_instance = [p for _, p in requests if p.startswith("/instances")]
        assert len(per_instance) == 3 * 6
        assert sum(p.endswith("/attachments/dicom/data") for p in per_instance) == 3
        assert not any(p.endswith("/attachments/dicom/info") for p in per_instance)
        _assert_parents_kept(conv_orthanc, parents)


def _journaled(
    runtime: Runtime, original: bytes, ref: InstanceRef, parents: tuple[ParentCarried, ...]
) -> tuple[bytes, JournalEntry, Journal]:
    """The converted file and the journal entry a run writes for ``ref``."""
    converted = transcode(original, TranscodeOptions()).data
    entry = JournalEntry(
        orthanc_id=ref.orthanc_id,
        sop_instance_uid=ref.sop_instance_uid,
        original_sha256=sha256(original),
        original_size=len(original),
        original_frame_crc32=(),
        converted_sha256=sha256(converted),
        converted_size=len(converted),
        parents=parents,
    )
    return converted, entry, open_journal(runtime.engine, runtime.settings.journal_dir)


async def _single(
    orthanc: OrthancProcess, runtime: Runtime
) -> tuple[bytes, dict[str, str], bytes, JournalEntry, Journal]:
    """A decorated one-instance patient and the journal entry a run writes for it."""
    files, parents = _store_study(orthanc, instances=1)
    _decorate(orthanc, parents)
    ref = (await _refs(runtime))[0]
    carried = await read_parents(runtime.orthanc, ref, await detect_carry_over(runtime.orthanc))
    converted, entry, journal = _journaled(runtime, files[0], ref, carried)
    return files[0], parents, converted, entry, journal


class TestCrashWindowsAndRollback:
    async def test_the_entry_holds_the_parents_state(
        self, conv_orthanc: OrthancProcess, runtime: Runtime
    ) -> None:
        _, parents, _, entry, _ = await _single(conv_orthanc, runtime)
        assert entry.parents == (
            ParentCarried("series", parents["series"], PARENT_VALUES["series"]),
            ParentCarried("studies", parents["studies"], PARENT_VALUES["studies"]),
            ParentCarried("patients", parents["patients"], PARENT_VALUES["patients"], (), True),
        )

    async def test_crash_between_delete_and_post(
        self, conv_orthanc: OrthancProcess, runtime: Runtime
    ) -> None:
        original, parents, _, entry, journal = await _single(conv_orthanc, runtime)
        await journal.record(entry, original)
        delete_instance(conv_orthanc, entry.orthanc_id)  # the crash: the patient went too
        assert _patients(conv_orthanc) == []

        settled = await recover_journal(runtime.orthanc, journal)

        assert [s.result for s in settled] == ["rolled_back"]
        assert served_file(conv_orthanc, entry.orthanc_id) == original
        _assert_parents_kept(conv_orthanc, parents)
        assert await journal.entries() == []

    async def test_crash_after_the_converted_file_was_posted(
        self, conv_orthanc: OrthancProcess, runtime: Runtime
    ) -> None:
        original, parents, converted, entry, journal = await _single(conv_orthanc, runtime)
        await journal.record(entry, original)
        delete_instance(conv_orthanc, entry.orthanc_id)
        assert conv_orthanc.store(converted)["Status"] == "Success"  # re-created bare
        assert _protected(conv_orthanc, parents["patients"]) == "0"

        settled = await recover_journal(runtime.orthanc, journal)

        assert [s.result for s in settled] == ["finished"]
        assert served_file(conv_orthanc, entry.orthanc_id) == converted
        _assert_parents_kept(conv_orthanc, parents)

    async def test_crash_after_a_rollback_reposted_the_original(
        self, conv_orthanc: OrthancProcess, runtime: Runtime
    ) -> None:
        original, parents, _, entry, journal = await _single(conv_orthanc, runtime)
        await journal.record(entry, original)
        delete_instance(conv_orthanc, entry.orthanc_id)
        assert conv_orthanc.store(original)["Status"] == "Success"

        settled = await recover_journal(runtime.orthanc, journal)

        assert [s.result for s in settled] == ["untouched"]
        _assert_parents_kept(conv_orthanc, parents)

    async def test_a_failed_replacement_rolls_back_with_the_parents_state(
        self, conv_orthanc: OrthancProcess, runtime: Runtime
    ) -> None:
        original, parents, converted, entry, journal = await _single(conv_orthanc, runtime)
        # Orthanc will serve a file whose hash is not the one journaled: verification fails.
        wrong = dataclasses.replace(entry, converted_sha256=sha256(b"other"))

        with pytest.raises(ReplaceFailed, match="does not serve the converted file"):
            await replace_instance(
                runtime.orthanc, journal, entry=wrong, original=original, converted=converted
            )

        assert served_file(conv_orthanc, entry.orthanc_id) == original
        _assert_parents_kept(conv_orthanc, parents)
        assert await journal.entries() == []

    async def test_a_removal_nobody_expected_is_logged(
        self, conv_orthanc: OrthancProcess, runtime: Runtime, caplog: pytest.LogCaptureFixture
    ) -> None:
        # The run listed a big series, but its other instances were deleted since: the delete
        # removes the patient, whose state was not read. Nothing to re-apply; said loudly.
        files, _ = _store_study(conv_orthanc, instances=1)
        ref = (await _refs(runtime))[0]
        converted, entry, journal = _journaled(runtime, files[0], ref, ())

        with caplog.at_level(logging.WARNING, logger="dicomgate.conversions.carry"):
            await replace_instance(
                runtime.orthanc, journal, entry=entry, original=files[0], converted=converted
            )

        assert served_file(conv_orthanc, ref.orthanc_id) == converted
        [record] = [r for r in caplog.records if "more than expected" in r.getMessage()]
        assert record.levelno == logging.ERROR
        assert f"instance {ref.orthanc_id} also removed its series, study, patient" in (
            record.getMessage()
        )
        assert "the patient's protection from recycling" in record.getMessage()


class TestPrediction:
    def test_only_a_series_the_run_may_empty_has_its_parents_read(self) -> None:
        ref = InstanceRef("i", "1.2", "1.3", 10, "se", study_id="st", patient_id="pa")
        levels = [("series", "se"), ("studies", "st"), ("patients", "pa")]
        assert parents_at_risk(_sized(ref, 1), concurrency=1) == levels
        assert parents_at_risk(_sized(ref, 2), concurrency=2) == levels
        assert parents_at_risk(_sized(ref, 2), concurrency=1) == []
        assert parents_at_risk(_sized(ref, 3), concurrency=2) == []
        assert parents_at_risk(_sized(ref, 0), concurrency=4) == levels  # unknown size: small

    def test_the_delete_answer_names_what_was_removed(self) -> None:
        def remaining(kind: str) -> DeleteAnswer:
            return DeleteAnswer.from_json(
                {"RemainingAncestor": {"ID": "x", "Path": "/x/x", "Type": kind}}
            )

        assert removed_parents(remaining("Series")) == frozenset()
        assert removed_parents(remaining("Study")) == frozenset({"series"})
        assert removed_parents(remaining("Patient")) == frozenset({"series", "studies"})
        assert removed_parents(DeleteAnswer.from_json({"RemainingAncestor": None})) == frozenset(
            {"series", "studies", "patients"}
        )
        assert removed_parents(None) is None  # the instance was already gone: not known
        assert removed_parents(DeleteAnswer.from_json({})) is None


def _sized(ref: InstanceRef, size: int) -> InstanceRef:
    return dataclasses.replace(ref, series_size=size)


class TestJournalFormat:
    def test_parents_round_trip_and_older_entries_still_load(self, tmp_path: Path) -> None:
        folder = tmp_path
        journal = ReplaceJournal(folder)
        entry = JournalEntry(
            orthanc_id="abc-1",
            sop_instance_uid="1.2",
            original_sha256=sha256(b"original"),
            original_size=8,
            original_frame_crc32=(1,),
            converted_sha256=sha256(b"converted"),
            converted_size=9,
            parents=(
                ParentCarried("series", "s", {"Comment": "x"}, ("red",)),
                ParentCarried("patients", "p", protected=True),
            ),
        )
        journal.record(entry, b"original")
        assert ReplaceJournal(folder).entries() == [entry]

        older = json.loads((folder / "abc-1.json").read_text())
        del older["parents"], older["user_metadata"], older["labels"]
        (folder / "abc-1.json").write_text(json.dumps(older))
        [loaded] = ReplaceJournal(folder).entries()
        assert (loaded.parents, loaded.user_metadata, loaded.labels) == ((), {}, ())
