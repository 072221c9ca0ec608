"""ReplaceJournal: durable on-disk copies of originals while they are replaced in Orthanc.

An entry is two files named after the Orthanc instance ID: ``<id>.dcm`` (the original bytes) and
``<id>.json`` (what is needed to finish or roll back). The ``.json`` is the commit marker: it is
written last (temp file, fsync, rename, fsync of the folder), so an entry that exists is whole.
Orthanc is touched only after :meth:`ReplaceJournal.record` returned; an entry is dropped only
after what Orthanc serves was verified. Dropping removes the marker first, so a crash while
dropping leaves at most an orphan ``.dcm``, which :meth:`ReplaceJournal.entries` removes.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from dicomgate.kit.hashing import sha256

ParentLevel = Literal["patients", "studies", "series"]


@dataclass(frozen=True)
class ParentCarried:
    """What Orthanc keeps on a parent resource the delete of an instance may remove.

    Deleting the last instance of a series removes the series (and its study, and its patient,
    when they become empty) with what Orthanc kept on them; the re-post re-creates them with the
    same IDs (hashes of the DICOM UIDs) but bare, and an unprotected patient may be recycled.
    """

    level: ParentLevel
    orthanc_id: str
    user_metadata: dict[str, str] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    protected: bool = False  # patients only: exempt from Orthanc's automatic recycling

    @property
    def carries(self) -> bool:
        """False when there is nothing to re-apply (then re-applying makes no Orthanc call)."""
        return bool(self.user_metadata or self.labels or self.protected)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ParentCarried:
        """Back from the entry's JSON (which stores tuples as lists)."""
        return cls(**{**raw, "labels": tuple(raw.get("labels", ()))})


@dataclass(frozen=True)
class JournalEntry:
    """What is known about one instance being replaced."""

    orthanc_id: str
    sop_instance_uid: str
    original_sha256: str
    original_size: int
    original_frame_crc32: tuple[int, ...]
    converted_sha256: str
    converted_size: int
    # Which job replaces it (so recovery records the outcome the crash prevented) and where.
    job_id: int | None = None
    study_instance_uid: str = ""
    # What Orthanc keeps per instance and loses with the delete: user-defined metadata and
    # labels, re-applied once the new file is stored (also after a crash, from this entry).
    user_metadata: dict[str, str] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    # The same for the parents the delete may remove (read only when its series is small enough
    # to be emptied by it; empty otherwise and in entries written before parents were carried).
    parents: tuple[ParentCarried, ...] = ()

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> JournalEntry:
        """Back from its JSON form (``asdict``: tuples stored as lists)."""
        return cls(
            **{
                **raw,
                "original_frame_crc32": tuple(raw["original_frame_crc32"]),
                "labels": tuple(raw.get("labels", ())),
                "parents": tuple(ParentCarried.from_json(p) for p in raw.get("parents", ())),
            }
        )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class ReplaceJournal:
    """A folder of originals kept until their replacement in Orthanc is verified (blocking I/O)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def exclusive(self) -> Iterator[bool]:
        """Hold the journal's lock for a run; yields False if another run holds it."""
        with (self.folder / "journal.lock").open("a") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _paths(self, orthanc_id: str) -> tuple[Path, Path]:
        if not orthanc_id or "/" in orthanc_id or orthanc_id.startswith("."):
            raise ValueError(f"not an Orthanc ID: {orthanc_id!r}")
        return self.folder / f"{orthanc_id}.dcm", self.folder / f"{orthanc_id}.json"

    def record(self, entry: JournalEntry, original: bytes) -> None:
        """Store the original and its entry durably (file and folder fsynced) before replacing."""
        if sha256(original) != entry.original_sha256:
            raise ValueError("journal entry does not describe these bytes")
        data_path, meta_path = self._paths(entry.orthanc_id)
        _write_durably(data_path, original)
        _fsync_dir(self.folder)
        _write_durably(meta_path, json.dumps(asdict(entry)).encode())
        _fsync_dir(self.folder)

    def original(self, entry: JournalEntry) -> bytes:
        """The journaled original, checked against its recorded hash."""
        data = self._paths(entry.orthanc_id)[0].read_bytes()
        if sha256(data) != entry.original_sha256:
            raise OSError(f"journaled original of {entry.orthanc_id} is damaged (hash mismatch)")
        return data

    def drop(self, orthanc_id: str) -> None:
        """Forget an entry whose outcome was verified in Orthanc."""
        data_path, meta_path = self._paths(orthanc_id)
        meta_path.unlink(missing_ok=True)
        _fsync_dir(self.folder)
        data_path.unlink(missing_ok=True)

    @staticmethod
    def count_pending(folder: Path) -> int:
        """Unfinished replacements in a journal folder, counted without touching it (no folder:
        none); what a dry run reports."""
        return len(list(folder.glob("*.json"))) if folder.is_dir() else 0

    def entries(self) -> list[JournalEntry]:
        """Every whole entry, oldest first; orphan originals and temp files are removed."""
        found: list[tuple[float, JournalEntry]] = []
        for tmp in self.folder.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
        markers = {p.stem for p in self.folder.glob("*.json")}
        for data_path in self.folder.glob("*.dcm"):
            if data_path.stem not in markers:
                data_path.unlink(missing_ok=True)
        for meta_path in self.folder.glob("*.json"):
            raw = json.loads(meta_path.read_text())
            found.append((meta_path.stat().st_mtime, JournalEntry.from_json(raw)))
        return [entry for _, entry in sorted(found, key=lambda item: item[0])]
