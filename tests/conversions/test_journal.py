"""The journals: the folder counts what is pending without touching it; both keep originals
whole, hash-checked, until dropped; PostgreSQL's as large objects that go with their entry."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from dicomgate.conversions.journal import JournalEntry, ReplaceJournal
from dicomgate.conversions.journals import Journal
from dicomgate.kit.hashing import sha256
from dicomgate.runtime import Runtime


def _entry(orthanc_id: str, *, original: bytes = b"original", study: str = "") -> JournalEntry:
    return JournalEntry(
        orthanc_id=orthanc_id,
        study_instance_uid=study,
        sop_instance_uid="1.2.3",
        original_sha256=sha256(original),
        original_size=len(original),
        original_frame_crc32=(1,),
        converted_sha256=sha256(b"converted"),
        converted_size=9,
    )


def test_pending_entries_are_counted_without_creating_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "journal"
    assert ReplaceJournal.count_pending(folder) == 0
    assert not folder.exists()  # a dry run changes nothing, not even an empty folder

    journal = ReplaceJournal(folder)
    journal.record(_entry("a-1"), b"original")
    journal.record(_entry("b-2"), b"original")
    (folder / "c-3.json.tmp").write_bytes(b"{}")  # a write cut short is not an entry
    (folder / "d-4.dcm").write_bytes(b"orphan")  # nor is an original without its marker
    assert ReplaceJournal.count_pending(folder) == 2

    journal.drop("a-1")
    assert ReplaceJournal.count_pending(folder) == 1
    assert [e.orthanc_id for e in journal.entries()] == ["b-2"]


class TestBothJournals:
    """The one interface, on SQLite's folder and on PostgreSQL's table."""

    async def test_record_read_list_and_drop(self, journal: Journal) -> None:
        original = bytes(range(256)) * 4000  # about 1 MB: several large-object pages
        first = _entry("a-1", original=original, study="1.2.1")
        await journal.record(first, original)
        await journal.record(_entry("b-2", study="1.2.2"), b"original")

        assert await journal.count_pending() == 2
        assert [e.orthanc_id for e in await journal.entries()] == ["a-1", "b-2"]
        assert await journal.entries(study="1.2.1") == [first]
        assert await journal.original(first) == original

        await journal.drop("a-1")
        await journal.drop("a-1")  # dropping twice is harmless
        assert [e.orthanc_id for e in await journal.entries()] == ["b-2"]
        assert await journal.count_pending() == 1

    async def test_record_refuses_bytes_the_entry_does_not_describe(self, journal: Journal) -> None:
        with pytest.raises(ValueError, match="does not describe"):
            await journal.record(_entry("c-3"), b"other")
        assert await journal.count_pending() == 0


@pytest.mark.parametrize("journal_runtime", ["database"], indirect=True)
class TestDatabaseJournal:
    async def test_an_original_is_a_large_object_removed_with_its_entry(
        self, journal_runtime: Runtime, journal: Journal
    ) -> None:
        before = await _large_objects(journal_runtime)
        await journal.record(_entry("d-4"), b"original")
        assert await _large_objects(journal_runtime) == before + 1
        await journal.drop("d-4")
        assert await _large_objects(journal_runtime) == before

    async def test_an_unsettled_entry_is_never_overwritten(self, journal: Journal) -> None:
        await journal.record(_entry("e-5"), b"original")
        with pytest.raises(OSError, match="already has an unsettled journal entry"):
            await journal.record(_entry("e-5"), b"original")
        assert await journal.count_pending() == 1

    async def test_a_damaged_original_is_refused(
        self, journal_runtime: Runtime, journal: Journal
    ) -> None:
        entry = _entry("f-6")
        await journal.record(entry, b"original")
        async with journal_runtime.engine.begin() as conn:
            await conn.execute(
                text(
                    "SELECT lo_put(original_oid, 0, '\\x58'::bytea) FROM replace_journal "
                    "WHERE orthanc_id = 'f-6'"
                )
            )
        with pytest.raises(OSError, match="damaged"):
            await journal.original(entry)


async def _large_objects(runtime: Runtime) -> int:
    async with runtime.engine.connect() as conn:
        count = await conn.scalar(text("SELECT count(*) FROM pg_largeobject_metadata"))
    return int(count or 0)
