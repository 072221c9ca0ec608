"""A viewer's frame request in one Orthanc call: the single-frame instances already resolved.

Once an instance URL has been resolved (by a metadata or a frame request), what its frame
request needs is remembered here by the URL's UIDs: the instance (Orthanc ID, frames, the
current file's attachment UUID), the file's details (stored transfer syntax, pixel module) and
what the audit row names. The next request then fetches the stored file only: Orthanc's
answer names the file's attachment UUID, so it is served only if it is the very file the
entry describes (a conversion in place or a re-upload changes the UUID: the entry is dropped
and the general path decides, as without it). The frame is cut out of the file on the event
loop (``framefile``), and the file's own meta information must name the same transfer syntax.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace

from dicomgate.audit.context import Touched
from dicomgate.dicomweb.catalog import Details, StoredInstance
from dicomgate.dicomweb.framefile import can_cut, single_frame
from dicomgate.errors import NotFound
from dicomgate.orthanc import OrthancClient

Key = tuple[str, str, str]  # study, series and SOP Instance UIDs


@dataclass(frozen=True)
class FrameSource:
    """A single-frame instance as last resolved, for its next frame request."""

    instance: StoredInstance
    details: Details
    touched: Touched


class FrameSources:
    """``FrameSource`` by URL UIDs: a bounded LRU."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Key, FrameSource] = OrderedDict()
        # Files the cut did not understand: their frames always take the general path.
        self._refused: OrderedDict[str, None] = OrderedDict()

    def get(self, key: Key) -> FrameSource | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, instance: StoredInstance, details: Details, *, patient_id: str) -> None:
        """Remember a single-frame instance with pixel data whose file UUID is known."""
        facts = details.facts
        if instance.frames != 1 or instance.file_uuid is None or facts is None:
            return
        if facts.number_of_frames != 1 or not can_cut(details.transfer_syntax):
            return
        if instance.file_uuid in self._refused:
            return
        key = (instance.study_uid, instance.series_uid, instance.sop_uid)
        touched = Touched(
            patient_ids=[patient_id],
            study_instance_uids=[instance.study_uid],
            series_instance_uids=[instance.series_uid],
            sop_instance_uids=[instance.sop_uid],
            orthanc_ids=[instance.orthanc_id],
        )
        # Without its DICOM JSON: the details cache bounds that by size, this is by count.
        slim = replace(details, metadata=b"")
        self._entries[key] = FrameSource(instance, slim, touched)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def drop(self, key: Key) -> None:
        self._entries.pop(key, None)

    def refuse(self, key: Key, file_uuid: str) -> None:
        """The file's frame could not be cut out: never try it again."""
        self.drop(key)
        self._refused[file_uuid] = None
        while len(self._refused) > self.max_entries:
            self._refused.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


async def stored_frame(
    orthanc: OrthancClient, sources: FrameSources, source: FrameSource
) -> bytes | None:
    """Frame 1 of the source's file as stored, if Orthanc still serves that very file (one
    call); None when the general path must decide (another file now, gone, or not cut): the
    entry is then dropped."""
    instance = source.instance
    key = (instance.study_uid, instance.series_uid, instance.sop_uid)
    facts = source.details.facts
    if instance.file_uuid is None or facts is None:
        sources.drop(key)
        return None
    try:
        file_uuid, data = await orthanc.attachment_file(instance.orthanc_id)
    except NotFound:
        sources.drop(key)
        return None
    if file_uuid != instance.file_uuid:
        sources.drop(key)
        return None
    frame = single_frame(data, source.details.transfer_syntax, facts)
    if frame is None:
        sources.refuse(key, file_uuid)
    return frame
