"""What Orthanc keeps besides the file, carried over a replacement.

A replacement deletes the instance and posts the converted file. Orthanc loses, with the
delete, the user metadata and labels of the instance; and deleting the last instance of a series
also removes the series (and its study and patient when they become empty) with what Orthanc
kept on them: the patient's protection from recycling, user metadata, labels. So that state is
read before the delete, journaled, and re-applied where it is missing afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from dicomgate.conversions.journal import JournalEntry, ParentCarried, ParentLevel
from dicomgate.conversions.plan import InstanceRef
from dicomgate.errors import NotFound
from dicomgate.orthanc import OrthancClient
from dicomgate.orthanc_models import LEVEL_WORDS, DeleteAnswer, Level

log = logging.getLogger(__name__)


# --- What Orthanc keeps per instance besides the file -----------------------------------------
# Orthanc's own instance metadata (its ServerEnumerations.cpp, ids below 1024). Orthanc writes it
# when a file is stored and refuses a PUT on it (403): only user metadata (ids 1024–65535,
# declared in Orthanc's ``UserMetadata`` option) is writable, and only that is carried over.
ORTHANC_SYSTEM_METADATA = frozenset(
    {
        "IndexInSeries",
        "ReceptionDate",
        "RemoteAET",
        "ModifiedFrom",
        "AnonymizedFrom",
        "LastUpdate",
        "Origin",
        "TransferSyntax",
        "SopClassUid",
        "RemoteIP",
        "CalledAET",
        "HttpUsername",
        "PixelDataOffset",
        "MainDicomTagsSignature",
        "MainDicomSequences",
        "PixelDataVR",
    }
)
USER_METADATA_IDS = range(1024, 65536)


@dataclass(frozen=True)
class CarryOver:
    """What this Orthanc lets a replacement carry over (detected once per run)."""

    labels: bool = False  # Orthanc ≥ 1.12 reports ``HasLabels`` in /system
    user_metadata_names: frozenset[str] | None = None  # /system ``UserMetadata`` (≥ 1.12)

    def is_user_metadata(self, name: str) -> bool:
        """True for a user-defined metadata name as ``/instances/{id}/metadata`` lists it."""
        if name.isdigit():  # user metadata without a name in the config is listed by number
            return int(name) in USER_METADATA_IDS
        if self.user_metadata_names is not None:
            return name in self.user_metadata_names
        return name not in ORTHANC_SYSTEM_METADATA


async def detect_carry_over(orthanc: OrthancClient) -> CarryOver:
    """Ask ``/system`` once per run, not each instance (1.10 has neither labels nor the list)."""
    system = await orthanc.system()
    names = system.get("UserMetadata")
    return CarryOver(
        labels=system.get("HasLabels") is True,
        user_metadata_names=frozenset(names) if isinstance(names, dict) else None,
    )


async def read_state(
    orthanc: OrthancClient, level: Level, orthanc_id: str, carry: CarryOver
) -> tuple[dict[str, str], tuple[str, ...]]:
    """The user metadata and labels Orthanc keeps on a resource (lost when it is deleted)."""
    metadata = await orthanc.metadata(level, orthanc_id)
    user = {name: str(value) for name, value in metadata.items() if carry.is_user_metadata(name)}
    labels = tuple(sorted(await orthanc.labels(level, orthanc_id))) if carry.labels else ()
    return user, labels


async def restore_state(
    orthanc: OrthancClient,
    level: Level,
    orthanc_id: str,
    user_metadata: Mapping[str, str],
    labels: Sequence[str],
) -> None:
    """Put back the journaled user metadata and labels that a resource is missing (see
    :func:`apply_carried` for why only the missing ones)."""
    if user_metadata:
        current = await orthanc.metadata(level, orthanc_id)
        for name, value in sorted(user_metadata.items()):
            if name not in current:
                await orthanc.set_metadata(level, orthanc_id, name, value)
    if labels:  # only journaled when this Orthanc has labels
        present = set(await orthanc.labels(level, orthanc_id))
        for label in labels:
            if label not in present:
                await orthanc.add_label(level, orthanc_id, label)


# --- What Orthanc keeps on the parents an instance's delete may remove ------------------------
PARENT_LEVELS: tuple[ParentLevel, ...] = ("series", "studies", "patients")


def parents_at_risk(ref: InstanceRef, concurrency: int = 1) -> list[tuple[ParentLevel, str]]:
    """The parents whose state is read before the delete, as (level, Orthanc ID).

    A series is emptied by this run only when it has no more instances than the run replaces at
    once (its workers may delete them all at the same moment); a bigger series — the common
    case — costs no extra call. When it is that small, its study and patient are read too: the
    study's other series may have gone since the listing, and the patient's protection is what a
    loss would hurt most (recycling). A series of unknown size counts as small.
    """
    if not ref.series_id or ref.series_size > max(1, concurrency):
        return []
    parents: tuple[tuple[ParentLevel, str], ...] = (
        ("series", ref.series_id),
        ("studies", ref.study_id),
        ("patients", ref.patient_id),
    )
    return [(level, orthanc_id) for level, orthanc_id in parents if orthanc_id]


async def read_parents(
    orthanc: OrthancClient,
    ref: InstanceRef,
    carry: CarryOver,
    *,
    concurrency: int = 1,
) -> tuple[ParentCarried, ...]:
    """What Orthanc keeps on the parents the instance's delete may remove (see above)."""
    found: list[ParentCarried] = []
    for level, orthanc_id in parents_at_risk(ref, concurrency):
        try:
            user_metadata, labels = await read_state(orthanc, level, orthanc_id, carry)
            protected = level == "patients" and await orthanc.patient_protected(orthanc_id)
        except NotFound:  # gone since the listing (deleted meanwhile): nothing to carry
            continue
        found.append(
            ParentCarried(
                level=level,
                orthanc_id=orthanc_id,
                user_metadata=user_metadata,
                labels=labels,
                protected=protected,
            )
        )
    return tuple(found)


def removed_parents(answer: DeleteAnswer | None) -> frozenset[ParentLevel] | None:
    """The parent levels Orthanc removed with an instance (its DELETE answer); None if unknown
    (no answer: the instance was already gone)."""
    removed = answer.removed_above("instances") if answer is not None else None
    if removed is None:
        return None
    return frozenset(level for level in PARENT_LEVELS if level in removed)


def check_removed(entry: JournalEntry, removed: frozenset[ParentLevel] | None) -> None:
    """Say loudly when the delete removed a parent whose state was not read before it.

    That happens only when something else deleted the series' other instances after the run
    listed them: what Orthanc kept on that parent cannot be carried over any more.
    """
    read = {parent.level for parent in entry.parents}
    unread = [level for level in PARENT_LEVELS if level in (removed or ()) and level not in read]
    if not unread:
        return
    log.log(
        logging.ERROR if "patients" in unread else logging.WARNING,
        "Deleting instance %s also removed its %s, more than expected (its series' other "
        "instances were deleted since the run listed them?); what Orthanc kept on %s "
        "(user metadata, labels%s) was not read and is not carried over",
        entry.orthanc_id,
        ", ".join(LEVEL_WORDS[level] for level in unread),
        "it" if len(unread) == 1 else "them",
        ", the patient's protection from recycling" if "patients" in unread else "",
    )


async def apply_parents(
    orthanc: OrthancClient,
    entry: JournalEntry,
    removed: Collection[ParentLevel] | None = None,
) -> None:
    """Re-apply what is missing on the journaled parents (those in ``removed``, else all).

    The patient first (its protection guards against recycling). A parent that carried nothing
    costs no call; one the delete did not remove keeps its state and is not touched.
    """
    for parent in sorted(entry.parents, key=lambda p: PARENT_LEVELS.index(p.level), reverse=True):
        if not parent.carries or (removed is not None and parent.level not in removed):
            continue
        level, orthanc_id = parent.level, parent.orthanc_id
        if parent.protected and not await orthanc.patient_protected(orthanc_id):
            await orthanc.set_patient_protected(orthanc_id, True)
        await restore_state(orthanc, level, orthanc_id, parent.user_metadata, parent.labels)


async def apply_carried(
    orthanc: OrthancClient,
    entry: JournalEntry,
    *,
    removed: Collection[ParentLevel] | None = None,
) -> None:
    """Re-apply the journaled user metadata, labels and parents' state that are missing.

    Safe to repeat. Only missing ones: a freshly stored file has none, and a value present but
    different was set by someone after the run read it (kept; it also needs no revision, which
    Orthanc's ``CheckRevisions`` would ask for to overwrite). ``removed``: the parent levels the
    delete removed, when known (recovery and rollback do not know: every journaled parent).
    """
    await apply_parents(orthanc, entry, removed)
    await restore_state(orthanc, "instances", entry.orthanc_id, entry.user_metadata, entry.labels)
