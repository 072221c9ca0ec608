"""Where an instance URL's UIDs were last found in Orthanc, so a viewer's frame requests skip
``/tools/find`` (Orthanc's slowest call on that path) but never trust the memory alone.

An entry is only a hint: every use reads the instance itself (``GET /instances/{id}``, a
primary-key lookup) and takes its answer as it is now — its current file (``FileUuid``, which
keys what is known of the file: a conversion in place or a re-upload changes it, so a
replaced file is never served under the old file's transfer syntax), its SOP Instance UID
and its series (whose Orthanc ID is derived from the patient, study and series UIDs). Gone or
different, the hint is dropped and ``/tools/find`` decides, as without it.
"""

from __future__ import annotations

from collections import OrderedDict

from dicomgate.dicomweb.catalog import SeriesIdentities, StoredInstance, find_instance, instance_of
from dicomgate.errors import NotFound
from dicomgate.orthanc import OrthancClient

Key = tuple[str, str, str]  # study, series and SOP Instance UIDs


class InstanceLookup:
    """Orthanc ID by the URL's (study, series, SOP Instance) UIDs: a bounded LRU of hints."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Key, str] = OrderedDict()

    def get(self, key: Key) -> str | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: Key, orthanc_id: str) -> None:
        self._entries[key] = orthanc_id
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def drop(self, key: Key) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)


async def _as_it_is_now(
    orthanc: OrthancClient, identities: SeriesIdentities, orthanc_id: str, key: Key
) -> StoredInstance | None:
    """The instance behind a hint as Orthanc has it now, or None if it is not that one now."""
    study_uid, series_uid, sop_uid = key
    try:
        found = await orthanc.resource("instances", orthanc_id)
    except NotFound:
        return None
    if str(found.get("MainDicomTags", {}).get("SOPInstanceUID", "")) != sop_uid:
        return None
    identity = await identities.get(orthanc, str(found.get("ParentSeries", "")))
    if (identity.study_uid, identity.series_uid) != (study_uid, series_uid):
        return None
    return instance_of(found, study_uid, series_uid)


async def lookup_instance(
    orthanc: OrthancClient,
    identities: SeriesIdentities,
    lookup: InstanceLookup,
    *,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
) -> list[StoredInstance]:
    """``catalog.find_instance``, through the hint when there is one and it still holds."""
    key = (study_uid, series_uid, sop_uid)
    hint = lookup.get(key)
    if hint is not None:
        current = await _as_it_is_now(orthanc, identities, hint, key)
        if current is not None:
            return [current]
        lookup.drop(key)
    found = await find_instance(
        orthanc, identities, study_uid=study_uid, series_uid=series_uid, sop_uid=sop_uid
    )
    # Only a unique answer is remembered: the same UIDs under two patients stay a 409. (Such a
    # second copy stored later, straight into Orthanc, is seen once the hint no longer holds.)
    if len(found) == 1:
        lookup.put(key, found[0].orthanc_id)
    return found
