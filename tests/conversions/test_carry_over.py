"""User metadata Orthanc keeps per instance survives the replacement, and every crash window."""

from __future__ import annotations

from io import BytesIO

import httpx
import pydicom
import pytest

from dicomgate.codec.profiles import HTJ2K_SYNTAXES
from dicomgate.codec.transcode import TranscodeOptions, transcode
from dicomgate.conversions.carry import CarryOver, detect_carry_over, read_state
from dicomgate.conversions.journal import JournalEntry
from dicomgate.conversions.journals import Journal, open_journal
from dicomgate.conversions.plan import make_selection
from dicomgate.conversions.replace import recover_journal
from dicomgate.conversions.service import run_job, start_or_resume
from dicomgate.kit.hashing import sha256
from dicomgate.runtime import Runtime
from tests.builders import make_dataset, to_bytes
from tests.conversions.helpers import delete_instance, served_file
from tests.orthanc_process import OrthancProcess

USER_VALUES = {"Comment": "reviewed by Dr. Müller\nsecond line", "2000": "unnamed user slot"}


@pytest.fixture
def runtime(journal_runtime: Runtime) -> Runtime:
    """Every test here on both journals: SQLite's folder, PostgreSQL's table."""
    return journal_runtime


def _set_metadata(orthanc: OrthancProcess, orthanc_id: str, values: dict[str, str]) -> None:
    for name, value in values.items():
        response = httpx.put(
            f"{orthanc.url}/instances/{orthanc_id}/metadata/{name}", content=value.encode()
        )
        response.raise_for_status()


def _metadata(orthanc: OrthancProcess, orthanc_id: str) -> dict[str, str]:
    response = httpx.get(f"{orthanc.url}/instances/{orthanc_id}/metadata", params={"expand": ""})
    response.raise_for_status()
    result: dict[str, str] = response.json()
    return result


def _status(url: str) -> int:
    return httpx.get(url).status_code


def _user(metadata: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in metadata.items() if k in USER_VALUES}


def _syntax(data: bytes | None) -> str:
    assert data is not None
    return str(pydicom.dcmread(BytesIO(data), stop_before_pixels=True).file_meta.TransferSyntaxUID)


class TestConversionCarriesMetadata:
    async def test_user_metadata_is_equal_after_conversion(
        self, conv_orthanc: OrthancProcess, runtime: Runtime
    ) -> None:
        study = "1.2.826.0.1.3680043.10.9.300"
        tagged = conv_orthanc.store(to_bytes(make_dataset(rows=16, columns=16, study_uid=study)))
        plain = conv_orthanc.store(to_bytes(make_dataset(rows=16, columns=16, study_uid=study)))
        _set_metadata(conv_orthanc, tagged["ID"], USER_VALUES)
        origin_before = _metadata(conv_orthanc, tagged["ID"])["Origin"]

        job_id = await start_or_resume(
            runtime, selection=make_selection(study=study), dry_run=False, resume=False
        )
        summary = await run_job(runtime, job_id, concurrency=2)

        assert summary.converted == 2
        after = _metadata(conv_orthanc, tagged["ID"])
        assert _user(after) == USER_VALUES
        assert after["Origin"] == origin_before  # Orthanc's own, set again by Orthanc
        assert _user(_metadata(conv_orthanc, plain["ID"])) == {}
        assert _syntax(served_file(conv_orthanc, tagged["ID"])) in HTJ2K_SYNTAXES
        assert await open_journal(runtime.engine, runtime.settings.journal_dir).entries() == []


def _journaled(
    orthanc: OrthancProcess, runtime: Runtime
) -> tuple[str, bytes, bytes, JournalEntry, Journal]:
    """A stored instance with user metadata, and its journal entry as a run writes it."""
    original = to_bytes(make_dataset(rows=16, columns=16))
    orthanc_id = orthanc.store(original)["ID"]
    _set_metadata(orthanc, orthanc_id, USER_VALUES)
    converted = transcode(original, TranscodeOptions()).data
    return (
        orthanc_id,
        original,
        converted,
        JournalEntry(
            orthanc_id=orthanc_id,
            sop_instance_uid="1.2.3",
            original_sha256=sha256(original),
            original_size=len(original),
            original_frame_crc32=(),
            converted_sha256=sha256(converted),
            converted_size=len(converted),
            user_metadata=dict(USER_VALUES),
        ),
        open_journal(runtime.engine, runtime.settings.journal_dir),
    )


class TestRecoveryRestoresMetadata:
    async def test_the_journal_entry_holds_what_a_run_read(
        self, conv_orthanc: OrthancProcess, runtime: Runtime
    ) -> None:
        orthanc_id, *_ = _journaled(conv_orthanc, runtime)
        carry = await detect_carry_over(runtime.orthanc)
        state = await read_state(runtime.orthanc, "instances", orthanc_id, carry)
        assert state == (USER_VALUES, ())

    async def test_crash_between_delete_and_post(
        self, conv_orthanc: OrthancProcess, runtime: Runtime
    ) -> None:
        orthanc_id, original, _, entry, journal = _journaled(conv_orthanc, runtime)
        await journal.record(entry, original)
        delete_instance(conv_orthanc, orthanc_id)  # the crash: metadata gone with the instance

        settled = await recover_journal(runtime.orthanc, journal)

        assert [s.result for s in settled] == ["rolled_back"]
        assert served_file(conv_orthanc, orthanc_id) == original
        assert _user(_metadata(conv_orthanc, orthanc_id)) == USER_VALUES
        assert await journal.entries() == []

    async def test_crash_after_the_converted_file_was_posted(
        self, conv_orthanc: OrthancProcess, runtime: Runtime
    ) -> None:
        orthanc_id, original, converted, entry, journal = _journaled(conv_orthanc, runtime)
        await journal.record(entry, original)
        delete_instance(conv_orthanc, orthanc_id)
        assert conv_orthanc.store(converted)["Status"] == "Success"

        settled = await recover_journal(runtime.orthanc, journal)

        assert [s.result for s in settled] == ["finished"]
        assert served_file(conv_orthanc, orthanc_id) == converted
        assert _user(_metadata(conv_orthanc, orthanc_id)) == USER_VALUES

    async def test_crash_after_a_rollback_reposted_the_original(
        self, conv_orthanc: OrthancProcess, runtime: Runtime
    ) -> None:
        orthanc_id, original, _, entry, journal = _journaled(conv_orthanc, runtime)
        await journal.record(entry, original)
        delete_instance(conv_orthanc, orthanc_id)
        assert conv_orthanc.store(original)["Status"] == "Success"  # re-posted, not yet tagged

        settled = await recover_journal(runtime.orthanc, journal)

        assert [s.result for s in settled] == ["untouched"]
        assert _user(_metadata(conv_orthanc, orthanc_id)) == USER_VALUES


class TestDetection:
    async def test_orthanc_1_10_has_no_labels_and_no_user_metadata_list(
        self, conv_orthanc: OrthancProcess, runtime: Runtime
    ) -> None:
        assert await detect_carry_over(runtime.orthanc) == CarryOver(
            labels=False, user_metadata_names=None
        )
        # Orthanc 1.10 answers 404 to the labels route: why it is asked once, from /system.
        assert _status(f"{conv_orthanc.url}/instances/x/labels") == 404

    def test_only_user_metadata_is_carried(self) -> None:
        carry = CarryOver()
        assert carry.is_user_metadata("Comment")
        assert carry.is_user_metadata("1024") and carry.is_user_metadata("65535")
        for system in ("Origin", "ReceptionDate", "TransferSyntax", "PixelDataOffset", "9"):
            assert not carry.is_user_metadata(system), system
        listed = CarryOver(labels=True, user_metadata_names=frozenset({"Comment"}))
        assert listed.is_user_metadata("Comment") and not listed.is_user_metadata("Other")
