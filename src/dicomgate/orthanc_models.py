"""Orthanc's resource levels and the answers dicomgate reads, as typed values.

Parsed once here, at the boundary, so the services never read Orthanc's JSON by key: the store
answer (``POST /instances``), the delete answer (``DELETE /{level}/{id}``: which ancestor is
left, hence which levels went with the resource), an instance's file meta header and a page of
the change log (``GET /changes``).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from dicomgate.errors import NotFound, OrthancError

Level = Literal["patients", "studies", "series", "instances"]
LevelWord = Literal["patient", "study", "series", "instance"]
# From the bottom up: deleting a resource may remove the levels above it, never below.
LEVELS: tuple[Level, ...] = ("instances", "series", "studies", "patients")
# The singular word for a level: in messages, in Orthanc's ``Type`` ("Study") and in its
# parent routes (``/series/{id}/study``).
LEVEL_WORDS: dict[Level, LevelWord] = {
    "patients": "patient",
    "studies": "study",
    "series": "series",
    "instances": "instance",
}
_LEVEL_OF_TYPE: dict[str, Level] = {word.title(): level for level, word in LEVEL_WORDS.items()}


def not_found_message(level: Level, orthanc_id: str) -> str:
    """The one wording of "there is no such resource" (a 404 to callers)."""
    return f"No {LEVEL_WORDS[level]} with Orthanc ID {orthanc_id}"


def not_found(level: Level, orthanc_id: str) -> NotFound:
    """NotFound for a resource of ``level``."""
    return NotFound(not_found_message(level, orthanc_id))


_FILE_UUID = re.compile(r'filename="([0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12})\.dcm"')


def file_uuid_of(headers: Mapping[str, str]) -> str | None:
    """The attachment UUID of a file Orthanc sends (``/attachments/dicom/data``): Orthanc names
    it ``<uuid>.dcm`` in Content-Disposition. None when the answer does not say so."""
    found = _FILE_UUID.search(headers.get("content-disposition", ""))
    return found.group(1) if found else None


def level_of_type(orthanc_type: object) -> Level | None:
    """The level of Orthanc's ``Type`` value (``"Patient"`` → ``"patients"``), None if unknown."""
    return _LEVEL_OF_TYPE.get(str(orthanc_type))


@dataclass(frozen=True)
class StoredInstance:
    """Orthanc's answer to ``POST /instances``: the instance's ID, its parents, the status."""

    id: str
    status: str | None  # "Success" or "AlreadyStored"; None when Orthanc did not say
    parent_patient: str = ""
    parent_study: str = ""
    parent_series: str = ""
    path: str = ""

    @classmethod
    def from_json(cls, body: Any) -> StoredInstance:
        """Parse the answer, which must name the stored instance (else OrthancError)."""
        if not isinstance(body, dict) or "ID" not in body:
            raise OrthancError("Orthanc did not accept the instance (no ID in its answer)")
        instance_id = str(body["ID"])
        status = body.get("Status")
        return cls(
            id=instance_id,
            status=None if status is None else str(status),
            parent_patient=str(body.get("ParentPatient", "")),
            parent_study=str(body.get("ParentStudy", "")),
            parent_series=str(body.get("ParentSeries", "")),
            path=str(body.get("Path", f"/instances/{instance_id}")),
        )


@dataclass(frozen=True)
class Ancestor:
    """A resource that is still there (Orthanc's ``RemainingAncestor``)."""

    level: Level
    orthanc_id: str


@dataclass(frozen=True)
class DeleteAnswer:
    """Orthanc's answer to ``DELETE /{level}/{id}``: the nearest ancestor still there.

    Orthanc removes the parents a delete leaves empty. ``remaining`` is None when nothing is
    left above (the patient went too); ``known`` is False when the answer does not say at all.
    """

    known: bool
    remaining: Ancestor | None = None

    @classmethod
    def from_json(cls, body: Any) -> DeleteAnswer:
        """Parse the answer; an ancestor of a type Orthanc does not have is an OrthancError."""
        if not isinstance(body, dict) or "RemainingAncestor" not in body:
            return cls(known=False)
        remaining = body["RemainingAncestor"]
        if not remaining:
            return cls(known=True)
        level = level_of_type(remaining.get("Type")) if isinstance(remaining, dict) else None
        if level is None or not remaining.get("ID"):
            raise OrthancError(f"Orthanc's DELETE answer names an unknown ancestor: {remaining}")
        return cls(known=True, remaining=Ancestor(level, str(remaining["ID"])))

    def removed_above(self, level: Level) -> frozenset[Level] | None:
        """The levels above a deleted ``level`` resource that went with it; None if unknown."""
        if not self.known:
            return None
        above = LEVELS[LEVELS.index(level) + 1 :]
        if self.remaining is None:
            return frozenset(above)
        if self.remaining.level not in above:
            return None
        return frozenset(above[: above.index(self.remaining.level)])


@dataclass(frozen=True)
class InstanceHeader:
    """``GET /instances/{id}/header?simplify``: the stored file's meta information."""

    transfer_syntax: str  # "" when the header has none

    @classmethod
    def from_json(cls, body: Any) -> InstanceHeader:
        """Parse the simplified header (keyed by keyword)."""
        found = body.get("TransferSyntaxUID", "") if isinstance(body, dict) else ""
        return cls(transfer_syntax=str(found or ""))


def _orthanc_time(text: str) -> datetime.datetime | None:
    """Orthanc's ``YYYYMMDDTHHMMSS`` (its change log writes UTC) as an aware datetime."""
    try:
        return datetime.datetime.strptime(text, "%Y%m%dT%H%M%S").replace(tzinfo=datetime.UTC)
    except ValueError:
        return None


@dataclass(frozen=True)
class Change:
    """One entry of Orthanc's change log (``GET /changes``)."""

    seq: int
    change_type: str  # "NewInstance", "StableSeries", …
    resource_type: str  # "Instance", "Series", …
    orthanc_id: str
    date: datetime.datetime | None  # when Orthanc logged it (UTC); None if unreadable


@dataclass(frozen=True)
class ChangesPage:
    """``GET /changes?since=&limit=``: the changes after ``since``, in order.

    ``last``: the sequence number to ask from next time; ``done``: nothing after it (yet).
    """

    changes: tuple[Change, ...]
    last: int
    done: bool

    @classmethod
    def from_json(cls, body: Any) -> ChangesPage:
        """Parse the answer (an answer without ``Last`` is an OrthancError)."""
        if not isinstance(body, dict) or not isinstance(body.get("Last"), int):
            raise OrthancError("Orthanc's /changes answer has no Last sequence number")
        changes = tuple(
            Change(
                seq=int(item.get("Seq", 0)),
                change_type=str(item.get("ChangeType", "")),
                resource_type=str(item.get("ResourceType", "")),
                orthanc_id=str(item.get("ID", "")),
                date=_orthanc_time(str(item.get("Date", ""))),
            )
            for item in body.get("Changes") or ()
            if isinstance(item, dict)
        )
        return cls(changes=changes, last=int(body["Last"]), done=bool(body.get("Done", True)))
