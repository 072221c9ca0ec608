"""The journal and recovery: every interrupted replacement ends finished or rolled back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dicomgate.codec.transcode import TranscodeOptions, transcode
from dicomgate.conversions import replace
from dicomgate.conversions.journal import JournalEntry, ReplaceJournal
from dicomgate.conversions.journals import Journal
from dicomgate.conversions.locks import run_locks
from dicomgate.conversions.replace import post_expecting, recover_journal
from dicomgate.errors import ReplaceFailed
from dicomgate.kit.hashing import sha256
from dicomgate.runtime import Runtime
from tests.builders import make_dataset, to_bytes
from tests.conversions.helpers import delete_instance, served_file
from tests.orthanc_process import OrthancProcess


def _entry(orthanc_id: str, original: bytes, converted: bytes, study: str = "") -> JournalEntry:
    return JournalEntry(
        orthanc_id=orthanc_id,
        study_instance_uid=study,
        sop_instance_uid="1.2.3",
        original_sha256=sha256(original),
        original_size=len(original),
        original_frame_crc32=(1, 2),
        converted_sha256=sha256(converted),
        converted_size=len(converted),
    )


class TestReplaceJournal:
    def test_entries_survive_and_drop_removes_both_files(self, tmp_path: Path) -> None:
        journal = ReplaceJournal(tmp_path)
        entry = _entry("abc-1", b"original", b"converted")
        journal.record(entry, b"original")

        reopened = ReplaceJournal(tmp_path)
        assert reopened.entries() == [entry]
        assert reopened.original(entry) == b"original"
        reopened.drop("abc-1")
        assert reopened.entries() == []
        assert not list(tmp_path.glob("abc-1*"))

    def test_an_original_without_its_marker_is_an_unstarted_entry_and_removed(
        self, tmp_path: Path
    ) -> None:
        (tmp_path / "abc-2.dcm").write_bytes(b"half written")
        assert ReplaceJournal(tmp_path).entries() == []
        assert not (tmp_path / "abc-2.dcm").exists()

    def test_a_damaged_original_is_refused(self, tmp_path: Path) -> None:
        journal = ReplaceJournal(tmp_path)
        entry = _entry("abc-3", b"original", b"converted")
        journal.record(entry, b"original")
        (tmp_path / "abc-3.dcm").write_bytes(b"0riginal")
        with pytest.raises(OSError, match="damaged"):
            journal.original(entry)

    def test_record_refuses_bytes_the_entry_does_not_describe(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="does not describe"):
            ReplaceJournal(tmp_path).record(_entry("abc-4", b"a", b"b"), b"other")

    def test_only_one_run_holds_the_journal(self, tmp_path: Path) -> None:
        journal = ReplaceJournal(tmp_path)
        with journal.exclusive() as first, ReplaceJournal(tmp_path).exclusive() as second:
            assert (first, second) == (True, False)


def _stored_pair(orthanc: OrthancProcess) -> tuple[str, bytes, bytes]:
    original = to_bytes(make_dataset(rows=16, columns=16))
    orthanc_id = orthanc.store(original)["ID"]
    converted = transcode(original, TranscodeOptions()).data
    return orthanc_id, original, converted


class TestRecovery:
    """Each case on both journals: SQLite's folder and PostgreSQL's table."""

    async def test_crash_between_delete_and_post_reposts_the_original(
        self, conv_orthanc: OrthancProcess, journal_runtime: Runtime, journal: Journal
    ) -> None:
        orthanc_id, original, converted = _stored_pair(conv_orthanc)
        await journal.record(_entry(orthanc_id, original, converted), original)
        delete_instance(conv_orthanc, orthanc_id)

        settled = await recover_journal(journal_runtime.orthanc, journal)

        assert [s.result for s in settled] == ["rolled_back"]
        assert served_file(conv_orthanc, orthanc_id) == original
        assert await journal.entries() == []
        assert await journal.count_pending() == 0

    async def test_crash_after_the_post_keeps_the_converted_file(
        self, conv_orthanc: OrthancProcess, journal_runtime: Runtime, journal: Journal
    ) -> None:
        orthanc_id, original, converted = _stored_pair(conv_orthanc)
        await journal.record(_entry(orthanc_id, original, converted), original)
        delete_instance(conv_orthanc, orthanc_id)
        assert conv_orthanc.store(converted)["Status"] == "Success"

        settled = await recover_journal(journal_runtime.orthanc, journal)

        assert [s.result for s in settled] == ["finished"]
        assert served_file(conv_orthanc, orthanc_id) == converted
        assert await journal.entries() == []

    async def test_something_else_served_is_replaced_by_the_original(
        self, conv_orthanc: OrthancProcess, journal_runtime: Runtime, journal: Journal
    ) -> None:
        orthanc_id, original, converted = _stored_pair(conv_orthanc)
        await journal.record(_entry(orthanc_id, original, converted + b"\0\0"), original)
        delete_instance(conv_orthanc, orthanc_id)
        assert conv_orthanc.store(converted)["Status"] == "Success"  # not the journaled result

        settled = await recover_journal(journal_runtime.orthanc, journal)

        assert [s.result for s in settled] == ["rolled_back"]
        assert served_file(conv_orthanc, orthanc_id) == original

    async def test_nothing_happened_yet_leaves_the_original(
        self, conv_orthanc: OrthancProcess, journal_runtime: Runtime, journal: Journal
    ) -> None:
        orthanc_id, original, converted = _stored_pair(conv_orthanc)
        await journal.record(_entry(orthanc_id, original, converted), original)

        settled = await recover_journal(journal_runtime.orthanc, journal)

        assert [s.result for s in settled] == ["untouched"]
        assert served_file(conv_orthanc, orthanc_id) == original


async def test_a_delete_a_dead_runner_sent_lands_late_and_loses_nothing(
    conv_orthanc: OrthancProcess,
    journal_runtime: Runtime,
    journal: Journal,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A runner journals an instance, sends its DELETE and dies; Orthanc carries the DELETE out
    only after the next runner took the study (a transaction not yet committed on a shared
    index). Recovery waits for such requests before it reads: the original is re-posted from
    the journal, not dropped as "still in place" a moment before Orthanc removes it."""
    monkeypatch.setattr(replace, "STALE_REQUEST_GRACE", 1.5)
    orthanc_id, original, converted = _stored_pair(conv_orthanc)
    await journal.record(_entry(orthanc_id, original, converted), original)

    async def the_dead_runners_delete() -> None:
        await asyncio.sleep(0.5)  # the original is still served when recovery starts
        await asyncio.to_thread(delete_instance, conv_orthanc, orthanc_id)

    landing = asyncio.create_task(the_dead_runners_delete())
    settled = await recover_journal(journal_runtime.orthanc, journal)
    await landing

    assert [s.result for s in settled] == ["rolled_back"]
    assert served_file(conv_orthanc, orthanc_id) == original
    assert await journal.count_pending() == 0


@pytest.mark.parametrize("journal_runtime", ["database"], indirect=True)
async def test_a_study_another_live_runner_holds_is_left_to_it(
    conv_orthanc: OrthancProcess, journal_runtime: Runtime, journal: Journal
) -> None:
    """Never two settlers at once: the entries of a held study wait for its holder (or for the
    next runner to take it once the holder's connection, and so its lock, is gone)."""
    orthanc_id, original, converted = _stored_pair(conv_orthanc)
    entry = _entry(orthanc_id, original, converted, study="1.2.826.0.1.3680043.10.7.1")
    await journal.record(entry, original)
    delete_instance(conv_orthanc, orthanc_id)  # as a runner in the middle of the replacement

    async with run_locks(journal_runtime.engine) as holder:
        assert await holder.try_study(entry.study_instance_uid)
        async with run_locks(journal_runtime.engine) as other:
            assert await recover_journal(journal_runtime.orthanc, journal, locks=other) == []
        assert await journal.count_pending() == 1
        assert served_file(conv_orthanc, orthanc_id) is None  # untouched by the other runner

    async with run_locks(journal_runtime.engine) as next_runner:  # the holder is gone
        settled = await recover_journal(journal_runtime.orthanc, journal, locks=next_runner)
    assert [s.result for s in settled] == ["rolled_back"]
    assert served_file(conv_orthanc, orthanc_id) == original
    assert await journal.count_pending() == 0


@pytest.mark.parametrize("any_orthanc", [False], indirect=True, ids=["overwrite-off"])
async def test_already_stored_is_never_success(
    conv_orthanc: OrthancProcess, runtime: Runtime
) -> None:
    orthanc_id, original, converted = _stored_pair(conv_orthanc)
    with pytest.raises(ReplaceFailed, match="'AlreadyStored'"):
        await post_expecting(runtime.orthanc, converted, orthanc_id)
    assert served_file(conv_orthanc, orthanc_id) == original
