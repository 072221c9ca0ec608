"""Replacing one stored instance with its converted file, safely; and settling a crash.

The replacement never trusts Orthanc's answer alone. With ``OverwriteInstances: false`` a
re-posted instance (same UIDs, so the same Orthanc ID) is ``AlreadyStored`` and the old file kept;
with ``true`` a post replaces it. So, whatever the setting, each instance is: journaled durably
(:mod:`.journals`: an fsynced file, or a PostgreSQL large object) → deleted → the converted file
posted (only ``Success`` counts) → the served file's SHA-256 checked against the converted file
→ what Orthanc kept for the old file and its removed parents re-applied (:mod:`.carry`) → the
outcome recorded by the run → journal entry dropped. Any failure re-posts the journaled original
(and its metadata); a crash leaves the entry, which :func:`recover_journal` finishes (recording
the outcome the crash prevented) or rolls back before new work on its study, under the study's
lock (:mod:`.locks`), so never two runners at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from dicomgate.conversions.carry import apply_carried, check_removed, removed_parents
from dicomgate.conversions.journal import JournalEntry
from dicomgate.conversions.journals import Journal
from dicomgate.conversions.locks import LocalLocks, RunLocks
from dicomgate.errors import NotFound, ReplaceFailed
from dicomgate.kit.hashing import sha256_in_thread
from dicomgate.orthanc import OrthancClient
from dicomgate.orthanc_models import DeleteAnswer

log = logging.getLogger(__name__)

# Seconds within which Orthanc carries out a request it has received, whoever sent it (a DELETE
# takes milliseconds; a loaded Orthanc on a shared index, a second or two). Recovery waits this
# long before it reads what a dead runner left (see :func:`recover_study`).
STALE_REQUEST_GRACE = 10.0


async def _served(orthanc: OrthancClient, orthanc_id: str) -> bytes | None:
    try:
        return await orthanc.instance_file(orthanc_id)
    except NotFound:
        return None


async def _served_attachment(
    orthanc: OrthancClient, orthanc_id: str
) -> tuple[str | None, bytes | None]:
    """The file Orthanc serves for the instance and its attachment UUID ((None, None) if gone)."""
    try:
        return await orthanc.attachment_file(orthanc_id)
    except NotFound:
        return None, None


async def _delete_instance(orthanc: OrthancClient, orthanc_id: str) -> DeleteAnswer | None:
    """Delete an instance; Orthanc's answer (which ancestor remains), None if it was gone."""
    try:
        return await orthanc.delete("instances", orthanc_id)
    except NotFound:
        return None


async def post_expecting(orthanc: OrthancClient, data: bytes, orthanc_id: str) -> None:
    """Post a file that must be stored anew as ``orthanc_id`` (else ReplaceFailed)."""
    answer = await orthanc.store_instance(data)
    if answer.status != "Success" or answer.id != orthanc_id:
        # AlreadyStored after a delete means something else wrote the instance meanwhile: the
        # file Orthanc keeps is not the one posted, so this is never success.
        raise ReplaceFailed(
            f"Orthanc answered {answer.status!r} (ID {answer.id}) when instance {orthanc_id} "
            "was posted; it does not hold the posted file"
        )


async def restore_original(orthanc: OrthancClient, journal: Journal, entry: JournalEntry) -> None:
    """Make Orthanc serve the journaled original again (verified by hash), then drop the entry."""
    original = await journal.original(entry)
    served = await _served(orthanc, entry.orthanc_id)
    if served is not None and await sha256_in_thread(served) != entry.original_sha256:
        await _delete_instance(orthanc, entry.orthanc_id)
        served = None
    if served is None:
        await post_expecting(orthanc, original, entry.orthanc_id)
        served = await _served(orthanc, entry.orthanc_id)
    if served is None or await sha256_in_thread(served) != entry.original_sha256:
        raise ReplaceFailed(
            f"Orthanc does not serve the original of instance {entry.orthanc_id} after it was "
            f"re-posted; it stays in the journal ({journal.where})"
        )
    await apply_carried(orthanc, entry)
    await journal.drop(entry.orthanc_id)


async def replace_instance(
    orthanc: OrthancClient,
    journal: Journal,
    *,
    entry: JournalEntry,
    original: bytes,
    converted: bytes,
) -> str | None:
    """Journal the original, swap in the converted file, verify what Orthanc serves; or undo.

    On success the journal entry stays: the caller drops it once the outcome is recorded, so a
    crash in between is settled by recovery as "converted by this job", never miscounted.
    Returns the attachment UUID of the verified file (None if Orthanc did not name it): the
    file whose every byte was just checked, read in the same answer.
    """
    await journal.record(entry, original)
    try:
        removed = removed_parents(await _delete_instance(orthanc, entry.orthanc_id))
        check_removed(entry, removed)
        await post_expecting(orthanc, converted, entry.orthanc_id)
        file_uuid, served = await _served_attachment(orthanc, entry.orthanc_id)
        if served is None or await sha256_in_thread(served) != entry.converted_sha256:
            raise ReplaceFailed(
                f"Orthanc does not serve the converted file of instance {entry.orthanc_id}"
            )
        await apply_carried(orthanc, entry, removed=removed)
    except asyncio.CancelledError:
        raise  # the journal entry stays; recovery finishes or rolls it back
    except Exception as exc:
        log.warning("Rolling back instance %s: %s", entry.orthanc_id, exc)
        try:
            await restore_original(orthanc, journal, entry)
        except Exception as restore_exc:
            log.error(
                "Could not roll back instance %s yet (%s); the original is kept in the "
                "journal and restored at the next start",
                entry.orthanc_id,
                restore_exc,
            )
        raise
    return file_uuid


@dataclass(frozen=True)
class Recovered:
    """An unfinished replacement found in the journal and settled."""

    entry: JournalEntry
    result: Literal["finished", "untouched", "rolled_back"]


Settle = Callable[[JournalEntry], Awaitable[None]]


async def recover_journal(
    orthanc: OrthancClient,
    journal: Journal,
    *,
    settle: Settle | None = None,
    locks: RunLocks | None = None,
) -> list[Recovered]:
    """Settle every entry whose study this run can take; those of a study another live runner
    holds are its own replacements under way, left to it (or, if it dies, to the next taker).

    Each study is locked, its entries read again (the holder may just have dropped them),
    settled, and the study released.
    """
    locks = locks or LocalLocks()
    settled: list[Recovered] = []
    studies = dict.fromkeys(entry.study_instance_uid for entry in await journal.entries())
    for study in studies:
        if not await locks.try_study(study):
            log.info("Journal entries of study %s are being settled by another runner", study)
            continue
        try:
            settled += await recover_study(orthanc, journal, study, settle=settle)
        finally:
            await locks.release_study(study)
    return settled


async def recover_study(
    orthanc: OrthancClient, journal: Journal, study: str, *, settle: Settle | None = None
) -> list[Recovered]:
    """Settle one study's entries (its lock held by the caller): each kept if Orthanc serves the
    converted file, else rolled back.

    ``settle`` runs for a kept conversion before its entry is dropped (the run records the
    outcome there). Carried metadata (the instance's and its journaled parents') is re-applied in
    every case: a crash may have come after a re-post and before it.
    """
    settled: list[Recovered] = []
    entries = await journal.entries(study=study)
    if entries:
        # Every entry is a dead runner's (the caller holds the study). Its last requests may
        # still be under way in Orthanc: a DELETE sent just before it died, not yet committed,
        # would remove the original after this reads it in place and drops its entry. Read
        # what Orthanc serves only once any request sent before the lock was taken is done.
        await asyncio.sleep(STALE_REQUEST_GRACE)
    for entry in entries:
        served = await _served(orthanc, entry.orthanc_id)
        digest = await sha256_in_thread(served) if served is not None else None
        if digest == entry.converted_sha256:
            await apply_carried(orthanc, entry)
            if settle is not None:
                await settle(entry)
            await journal.drop(entry.orthanc_id)
            settled.append(Recovered(entry, "finished"))
            log.info("Recovered instance %s: the converted file is in place", entry.orthanc_id)
        elif digest == entry.original_sha256:
            await apply_carried(orthanc, entry)
            await journal.drop(entry.orthanc_id)
            settled.append(Recovered(entry, "untouched"))
            log.info("Recovered instance %s: the original is still in place", entry.orthanc_id)
        else:
            await restore_original(orthanc, journal, entry)
            settled.append(Recovered(entry, "rolled_back"))
            log.warning("Recovered instance %s: the original was re-posted", entry.orthanc_id)
    return settled
