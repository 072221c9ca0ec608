"""The journal answers how many replacements are pending, without touching its folder."""

from __future__ import annotations

from pathlib import Path

from dicomgate.conversions.journal import JournalEntry, ReplaceJournal
from dicomgate.kit.hashing import sha256


def _entry(orthanc_id: str) -> JournalEntry:
    return JournalEntry(
        orthanc_id=orthanc_id,
        sop_instance_uid="1.2.3",
        original_sha256=sha256(b"original"),
        original_size=8,
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
