"""Where the UIDs of a DICOMweb URL live in Orthanc, and what dicomgate knows of each file.

UIDs are resolved with ``/tools/find`` (the study, series and instance UIDs of the URL together,
so an instance is never served under another study's URL). What the WADO-RS answers need per
stored file — its transfer syntax (from ``/instances/{id}/header``: Orthanc 1.10 records no
syntax it does not know, HTJ2K included), its DICOM JSON and its pixel module — is cached by
Orthanc's attachment UUID (``FileUuid``), which changes whenever the stored file does (a
conversion in place, a re-upload): an entry can never describe another file.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from dicomgate.codec.native import PixelFacts
from dicomgate.codec.pool import WorkerPool
from dicomgate.dicomweb.dicomjson import ConvertedInstance, convert_tags_task
from dicomgate.dicomweb.media import NATIVE
from dicomgate.errors import BadRequest, NotFound
from dicomgate.orthanc import OrthancClient

_UID = re.compile(r"[0-9]+(\.[0-9]+)*")  # PS3.5 §9.1 (leading zeros tolerated, as on ingest)
# Above this many uncached instances of a series, one /series/{id}/instances-tags call (Orthanc
# reads every file of the series) beats one /instances/{id}/tags call per instance.
SERIES_CALL_THRESHOLD = 4
T = TypeVar("T")
# The syntaxes dicomgate recorded, by Orthanc ID, of the files given (Orthanc ID → attachment
# UUID) it stored itself; only files it verified (``statistics.ledger.recorded_syntaxes``).
Recorded = Callable[[dict[str, str]], Awaitable[dict[str, str]]]


def check_uid(value: str, what: str) -> str:
    """A UID of the URL must be one (PS3.5 §9.1: digits and dots, at most 64), else 400."""
    if len(value) > 64 or not _UID.fullmatch(value):
        raise BadRequest(f"{value[:80]!r} is not a {what} UID")
    return value


@dataclass(frozen=True)
class StoredInstance:
    """One instance as Orthanc stores it, with the UIDs of its URL."""

    orthanc_id: str
    file_uuid: str | None
    series_orthanc_id: str
    study_uid: str
    series_uid: str
    sop_uid: str
    frames: int
    number: int | None

    @property
    def order(self) -> tuple[str, bool, int, str]:
        """Series, then instance number (absent last), then SOP Instance UID."""
        return (self.series_uid, self.number is None, self.number or 0, self.sop_uid)


@dataclass(frozen=True)
class Details:
    """What is known of one stored file: its transfer syntax, DICOM JSON and pixel module."""

    transfer_syntax: str
    metadata: bytes
    facts: PixelFacts | None

    @property
    def encapsulated(self) -> bool:
        return is_encapsulated(self.transfer_syntax)


def is_encapsulated(transfer_syntax: str) -> bool:
    """Whether pixel data in this syntax is encapsulated (PS3.5 A.4): every non-native one."""
    return transfer_syntax not in NATIVE


class DetailsCache:
    """LRU of ``Details`` by file UUID, bounded by the bytes of DICOM JSON it holds."""

    def __init__(self, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, Details] = OrderedDict()
        self._bytes = 0

    def get(self, file_uuid: str | None) -> Details | None:
        if file_uuid is None:
            return None
        found = self._entries.get(file_uuid)
        if found is not None:
            self._entries.move_to_end(file_uuid)
        return found

    def put(self, file_uuid: str | None, details: Details) -> None:
        if file_uuid is None:
            return
        old = self._entries.pop(file_uuid, None)
        if old is not None:
            self._bytes -= len(old.metadata)
        self._entries[file_uuid] = details
        self._bytes += len(details.metadata)
        while self._bytes > self.max_bytes and len(self._entries) > 1:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= len(dropped.metadata)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class SeriesIdentity:
    """Who and what an Orthanc series is: its patient ID and its study and series UIDs."""

    patient_id: str
    study_uid: str
    series_uid: str


class SeriesIdentities:
    """``SeriesIdentity`` by series Orthanc ID. Orthanc derives a series' ID from the patient ID
    and the study and series UIDs (a hash), so an entry can never describe another series."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, SeriesIdentity] = OrderedDict()

    async def get(self, orthanc: OrthancClient, series_orthanc_id: str) -> SeriesIdentity:
        found = self._entries.get(series_orthanc_id)
        if found is None:
            series, study = await asyncio.gather(
                orthanc.resource("series", series_orthanc_id),
                orthanc.parent("series", series_orthanc_id, "studies"),
            )
            found = SeriesIdentity(
                patient_id=str(study.get("PatientMainDicomTags", {}).get("PatientID", "")),
                study_uid=str(study.get("MainDicomTags", {}).get("StudyInstanceUID", "")),
                series_uid=str(series.get("MainDicomTags", {}).get("SeriesInstanceUID", "")),
            )
            self._entries[series_orthanc_id] = found
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return found


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def instance_of(found: dict[str, Any], study_uid: str, series_uid: str) -> StoredInstance:
    """An instance as Orthanc describes it (``/instances/{id}`` or ``/tools/find``, expanded)."""
    tags = found.get("MainDicomTags", {})
    return StoredInstance(
        orthanc_id=str(found["ID"]),
        file_uuid=found.get("FileUuid"),
        series_orthanc_id=str(found.get("ParentSeries", "")),
        study_uid=study_uid,
        series_uid=series_uid,
        sop_uid=str(tags.get("SOPInstanceUID", "")),
        frames=max(1, _int(tags.get("NumberOfFrames")) or 1),
        number=_int(tags.get("InstanceNumber")),
    )


async def find_study(orthanc: OrthancClient, study_uid: str) -> dict[str, Any]:
    """The study (expanded: main tags, patient tags, series IDs); 404 when not stored."""
    found = await orthanc.find("Study", {"StudyInstanceUID": study_uid}, expand=True)
    if not found:
        raise NotFound(f"No study {study_uid}")
    study: dict[str, Any] = found[0]
    return study


async def find_series(orthanc: OrthancClient, study_uid: str, series_uid: str) -> dict[str, Any]:
    """The series of the study (expanded: main tags, instance IDs); 404 when not stored."""
    query = {"StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid}
    found = await orthanc.find("Series", query, expand=True)
    if not found:
        raise NotFound(f"No series {series_uid} in study {study_uid}")
    series: dict[str, Any] = found[0]
    return series


async def find_instance(
    orthanc: OrthancClient,
    identities: SeriesIdentities,
    *,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
) -> list[StoredInstance]:
    """One instance by its UIDs; 404 unless it is in that study and series.

    Orthanc finds a SOP Instance UID alone three times faster than with its study and series
    UIDs (the frames of a viewer pay it per request): the parents are checked here, from the
    series' identity (cached).
    """
    found = await orthanc.find("Instance", {"SOPInstanceUID": sop_uid}, expand=True)
    out = []
    for candidate in found:
        identity = await identities.get(orthanc, str(candidate.get("ParentSeries", "")))
        if (identity.study_uid, identity.series_uid) == (study_uid, series_uid):
            out.append(instance_of(candidate, study_uid, series_uid))
    if not out:
        raise NotFound(f"No instance {sop_uid} in study {study_uid}, series {series_uid}")
    return out


async def list_instances(
    orthanc: OrthancClient,
    *,
    study_uid: str,
    series_uid: str | None = None,
) -> list[StoredInstance]:
    """The stored instances of a study or series, in series and instance-number order; 404 if
    none."""
    query = {"StudyInstanceUID": study_uid}
    if series_uid is not None:
        query["SeriesInstanceUID"] = series_uid
        found = await orthanc.find("Instance", query, expand=True)
        series_uids = {str(f.get("ParentSeries", "")): series_uid for f in found}
    else:
        found, series = await asyncio.gather(
            orthanc.find("Instance", query, expand=True),
            orthanc.find("Series", {"StudyInstanceUID": study_uid}, expand=True),
        )
        series_uids = {
            str(s["ID"]): str(s.get("MainDicomTags", {}).get("SeriesInstanceUID", ""))
            for s in series
        }
    if not found:
        where = f"study {study_uid}" + (f", series {series_uid}" if series_uid else "")
        raise NotFound(f"No instance in {where}")
    out = [
        instance_of(f, study_uid, series_uids.get(str(f.get("ParentSeries", "")), ""))
        for f in found
    ]
    out.sort(key=lambda i: i.order)
    return out


async def bounded(concurrency: int, calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run the calls with at most ``concurrency`` at once; results in order."""
    semaphore = asyncio.Semaphore(max(1, concurrency))

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await call()

    return list(await asyncio.gather(*(one(c) for c in calls)))


async def _syntax_of(orthanc: OrthancClient, orthanc_id: str) -> str:
    header = await orthanc.instance_header(orthanc_id)
    return header.transfer_syntax.strip("\x00 ")


async def syntaxes_of(
    orthanc: OrthancClient,
    instances: Sequence[StoredInstance],
    *,
    concurrency: int,
    recorded: Recorded | None = None,
) -> dict[str, str]:
    """The stored transfer syntax of each instance, by Orthanc ID.

    First what dicomgate recorded when it stored the very file Orthanc holds now (``recorded``:
    by attachment UUID, one database query). Then, for many instances, Orthanc's
    ``TransferSyntax`` metadata (one ``bulk-content`` call per thousand); Orthanc 1.10 records
    none for syntaxes it does not know (HTJ2K included): those, and single instances, are read
    from the file's header.
    """
    out: dict[str, str] = {}
    if recorded is not None:
        files = {i.orthanc_id: i.file_uuid for i in instances if i.file_uuid is not None}
        if files:
            out.update(await recorded(files))
    if len(instances) - len(out) > SERIES_CALL_THRESHOLD:
        ids = [i.orthanc_id for i in instances if i.orthanc_id not in out]
        for start in range(0, len(ids), 1000):
            found = await orthanc.bulk_content("Instance", ids[start : start + 1000], metadata=True)
            for resource in found:
                syntax = (resource.get("Metadata") or {}).get("TransferSyntax")
                if syntax:
                    out[str(resource["ID"])] = str(syntax)
    missing = [i.orthanc_id for i in instances if i.orthanc_id not in out]
    read = await bounded(concurrency, [partial(_syntax_of, orthanc, i) for i in missing])
    out.update(zip(missing, read, strict=True))
    return out


async def _series_tags(
    orthanc: OrthancClient, series_id: str, members: list[StoredInstance], concurrency: int
) -> bytes | list[tuple[str, bytes]]:
    """Orthanc's tags of some instances of one series: one series call when many (the whole
    series' tags), else one call per instance (by Orthanc ID)."""
    if len(members) > SERIES_CALL_THRESHOLD:
        return await orthanc.tags_json("series", series_id)
    raws = await bounded(
        concurrency, [partial(orthanc.tags_json, "instances", i.orthanc_id) for i in members]
    )
    return [(i.orthanc_id, raw) for i, raw in zip(members, raws, strict=True)]


async def _convert(
    orthanc: OrthancClient,
    pool: WorkerPool,
    series_id: str,
    fetched: bytes | list[tuple[str, bytes]],
    syntax_of: dict[str, tuple[str, bool]],
) -> dict[str, ConvertedInstance]:
    """Convert in the worker pool; text values Orthanc shortened (``TooLong``) are asked for
    again, whole (one more call), and converted again."""
    if isinstance(fetched, bytes):
        converted = await pool.run(convert_tags_task, fetched, syntax_of, False)
        long_tags = sorted({t for c in converted.values() for t in c.too_long})
        if long_tags:
            raw = await orthanc.tags_json("series", series_id, ignore_length=long_tags)
            converted = await pool.run(convert_tags_task, raw, syntax_of, False)
        return converted
    out: dict[str, ConvertedInstance] = {}
    for orthanc_id, raw in fetched:
        syntax = {"": syntax_of[orthanc_id]}
        one = (await pool.run(convert_tags_task, raw, syntax, True))[""]
        if one.too_long:
            raw = await orthanc.tags_json("instances", orthanc_id, ignore_length=one.too_long)
            one = (await pool.run(convert_tags_task, raw, syntax, True))[""]
        out[orthanc_id] = one
    return out


async def details(
    orthanc: OrthancClient,
    pool: WorkerPool,
    cache: DetailsCache,
    instances: Sequence[StoredInstance],
    *,
    concurrency: int,
    recorded: Recorded | None = None,
) -> dict[str, Details]:
    """Details of each instance (by Orthanc ID): from the cache, else read from Orthanc (the
    syntaxes and the tags at once, a fixed number of calls per series but for the headers of
    syntaxes Orthanc does not record) and converted in the worker pool."""
    out: dict[str, Details] = {}
    missing: list[StoredInstance] = []
    for inst in instances:
        cached = cache.get(inst.file_uuid)
        if cached is None:
            missing.append(inst)
        else:
            out[inst.orthanc_id] = cached
    if not missing:
        return out
    by_series: dict[str, list[StoredInstance]] = {}
    for inst in missing:
        by_series.setdefault(inst.series_orthanc_id, []).append(inst)
    reading = asyncio.ensure_future(
        syntaxes_of(orthanc, missing, concurrency=concurrency, recorded=recorded)
    )
    try:
        fetched = await asyncio.gather(
            *(_series_tags(orthanc, s, m, concurrency) for s, m in by_series.items())
        )
        syntaxes = await reading
    finally:
        reading.cancel()  # when the tags could not be read
    syntax_of = {i: (s, is_encapsulated(s)) for i, s in syntaxes.items()}
    results = await asyncio.gather(
        *(
            _convert(orthanc, pool, series_id, raw, syntax_of)
            for series_id, raw in zip(by_series, fetched, strict=True)
        )
    )
    converted_all = {k: v for r in results for k, v in r.items()}
    for inst in missing:
        converted = converted_all.get(inst.orthanc_id)
        if converted is None:  # deleted between the listing and the tag read
            continue
        entry = Details(syntax_of[inst.orthanc_id][0], converted.json, converted.facts)
        cache.put(inst.file_uuid, entry)
        out[inst.orthanc_id] = entry
    return out


async def stored_syntaxes(
    orthanc: OrthancClient,
    cache: DetailsCache,
    instances: Sequence[StoredInstance],
    *,
    concurrency: int,
    recorded: Recorded | None = None,
) -> list[str]:
    """Each instance's stored transfer syntax: cached, else from Orthanc (``syntaxes_of``)."""
    known = [cache.get(i.file_uuid) for i in instances]
    missing = [i for i, k in zip(instances, known, strict=True) if k is None]
    fetched = await syntaxes_of(orthanc, missing, concurrency=concurrency, recorded=recorded)
    return [
        k.transfer_syntax if k is not None else fetched[i.orthanc_id]
        for i, k in zip(instances, known, strict=True)
    ]
