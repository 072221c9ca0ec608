"""Where a run keeps originals while it replaces them: a folder, or PostgreSQL.

Both journals have one async interface (:class:`Journal`): record an original durably before
Orthanc is touched, read it back (hash-checked), drop it once the outcome is verified and
recorded, list what is left (oldest first, or one study's), count what is pending. Who may
settle an entry is decided by the run's locks (:mod:`.locks`), study by study.

- :class:`FolderJournal` (SQLite, the embedded default): :class:`.journal.ReplaceJournal` off
  the event loop; its ``flock`` makes a run the only one on the folder.
- :class:`DatabaseJournal` (PostgreSQL): a row per entry in ``replace_journal`` and the original
  as a large object, both written in one transaction (and removed in one), so an entry that
  exists is whole and no original is ever orphaned. Every worker on every machine reaches it;
  nothing serialises the cluster but the study locks. ``lo_from_bytea``/``lo_get`` move an
  original in one statement (up to PostgreSQL's 1 GB per value, far above an instance's size).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Protocol, cast

from sqlalchemy import LargeBinary, Table, delete, func, insert, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from dicomgate.conversions.journal import JournalEntry, ReplaceJournal
from dicomgate.conversions.models import ReplaceJournalRow
from dicomgate.kit.hashing import sha256_in_thread

_TABLE = cast(Table, ReplaceJournalRow.__table__)


class Journal(Protocol):
    """The originals of the replacements under way (see the module docstring)."""

    @property
    def where(self) -> str:
        """Where the originals are (for messages)."""
        ...

    @property
    def shared(self) -> bool:
        """True when other runs work on it at the same time: a run then settles each study's
        entries when it takes the study. (A folder is settled once, at the start of the run
        that holds it alone: listing it mid-run would remove the files being written.)"""
        ...

    def exclusive(self) -> AbstractAsyncContextManager[bool]:
        """Held for a whole run; yields False when another run must have it alone."""
        ...

    async def record(self, entry: JournalEntry, original: bytes) -> None:
        """Store the original and its entry durably, before Orthanc is touched."""
        ...

    async def original(self, entry: JournalEntry) -> bytes:
        """The journaled original, checked against its recorded hash (else OSError)."""
        ...

    async def drop(self, orthanc_id: str) -> None:
        """Forget an entry whose outcome was verified in Orthanc (and recorded)."""
        ...

    async def drop_all(self, orthanc_ids: Sequence[str]) -> None:
        """:meth:`drop` for several entries at once (one transaction on PostgreSQL)."""
        ...

    async def entries(self, *, study: str | None = None) -> list[JournalEntry]:
        """Every whole entry (or one study's), oldest first."""
        ...

    async def count_pending(self) -> int:
        """Unfinished replacements."""
        ...


class FolderJournal:
    """The local folder (:class:`.journal.ReplaceJournal`), its blocking I/O in threads."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    @property
    def where(self) -> str:
        return str(self._folder)

    @property
    def shared(self) -> bool:
        return False

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[bool]:
        # The flock is taken and released without blocking (LOCK_NB), so this stays on the loop.
        with self._journal().exclusive() as owned:
            yield owned

    def _journal(self) -> ReplaceJournal:
        return ReplaceJournal(self._folder)

    async def record(self, entry: JournalEntry, original: bytes) -> None:
        await asyncio.to_thread(self._journal().record, entry, original)

    async def original(self, entry: JournalEntry) -> bytes:
        return await asyncio.to_thread(self._journal().original, entry)

    async def drop(self, orthanc_id: str) -> None:
        await asyncio.to_thread(self._journal().drop, orthanc_id)

    async def drop_all(self, orthanc_ids: Sequence[str]) -> None:
        def drop_each() -> None:
            journal = self._journal()
            for orthanc_id in orthanc_ids:
                journal.drop(orthanc_id)

        if orthanc_ids:
            await asyncio.to_thread(drop_each)

    async def entries(self, *, study: str | None = None) -> list[JournalEntry]:
        found = await asyncio.to_thread(self._journal().entries)
        return [e for e in found if study is None or e.study_instance_uid == study]

    async def count_pending(self) -> int:
        return await asyncio.to_thread(ReplaceJournal.count_pending, self._folder)


class DatabaseJournal:
    """PostgreSQL's ``replace_journal`` table, originals as large objects."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @property
    def where(self) -> str:
        return "the database's replace_journal table"

    @property
    def shared(self) -> bool:
        return True

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[bool]:
        yield True  # runs share it; the study locks say who settles and replaces what

    async def record(self, entry: JournalEntry, original: bytes) -> None:
        if await sha256_in_thread(original) != entry.original_sha256:
            raise ValueError("journal entry does not describe these bytes")
        statement = insert(_TABLE).values(
            orthanc_id=entry.orthanc_id,
            study_instance_uid=entry.study_instance_uid,
            job_id=entry.job_id,
            entry=asdict(entry),
            original_oid=func.lo_from_bytea(0, literal(original, LargeBinary)),
        )
        try:
            async with self._engine.begin() as conn:
                await conn.execute(statement)
        except IntegrityError:
            # An unsettled entry for this instance: its original must not be overwritten.
            raise OSError(
                f"instance {entry.orthanc_id} already has an unsettled journal entry"
            ) from None

    async def original(self, entry: JournalEntry) -> bytes:
        query = select(func.lo_get(_TABLE.c.original_oid)).where(
            _TABLE.c.orthanc_id == entry.orthanc_id
        )
        async with self._engine.connect() as conn:
            data = (await conn.execute(query)).scalar_one_or_none()
        if data is None:
            raise OSError(f"the journal has no original of {entry.orthanc_id}")
        if await sha256_in_thread(bytes(data)) != entry.original_sha256:
            raise OSError(f"journaled original of {entry.orthanc_id} is damaged (hash mismatch)")
        return bytes(data)

    async def drop(self, orthanc_id: str) -> None:
        await self.drop_all([orthanc_id])

    async def drop_all(self, orthanc_ids: Sequence[str]) -> None:
        if not orthanc_ids:
            return
        async with self._engine.begin() as conn:
            oids = (
                await conn.execute(
                    delete(_TABLE)
                    .where(_TABLE.c.orthanc_id.in_(list(orthanc_ids)))
                    .returning(_TABLE.c.original_oid)
                )
            ).scalars()
            for oid in oids.all():
                await conn.execute(select(func.lo_unlink(oid)))

    async def entries(self, *, study: str | None = None) -> list[JournalEntry]:
        query = select(_TABLE.c.entry).order_by(_TABLE.c.created_at, _TABLE.c.orthanc_id)
        if study is not None:
            query = query.where(_TABLE.c.study_instance_uid == study)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).scalars().all()
        return [JournalEntry.from_json(raw) for raw in rows]

    async def count_pending(self) -> int:
        async with self._engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(_TABLE))).scalar_one())


def uses_database_journal(engine: AsyncEngine) -> bool:
    """True on PostgreSQL: the journal every worker can reach."""
    return engine.dialect.name == "postgresql"


def open_journal(engine: AsyncEngine, folder: Path) -> Journal:
    """The journal of this deployment: PostgreSQL's table, else the local folder."""
    return DatabaseJournal(engine) if uses_database_journal(engine) else FolderJournal(folder)


async def pending_replacements(engine: AsyncEngine, folder: Path) -> int:
    """Unfinished replacements, counted without changing anything (what a dry run reports);
    on PostgreSQL also those a folder journal kept from before the database journal."""
    pending = await asyncio.to_thread(ReplaceJournal.count_pending, folder)
    if uses_database_journal(engine):
        pending += await DatabaseJournal(engine).count_pending()
    return pending
