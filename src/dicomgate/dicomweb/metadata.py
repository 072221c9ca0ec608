"""WADO-RS Retrieve Metadata (PS3.18 §10.4.1.1.2): every instance's attributes as DICOM JSON,
bulk data (Pixel Data included) as BulkDataURIs to dicomgate's ``/bulk/`` resource.

A study's answer is streamed series by series: its instances are listed first (one Orthanc
call, so an unknown study is a 404 before anything is sent), then each series' instances are
read from the details cache or from Orthanc (``catalog.details``) while the previous ones are
already on their way to the client.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from itertools import groupby

from dicomgate.dicomweb.catalog import StoredInstance, details
from dicomgate.dicomweb.dicomjson import complete_bulk_uris
from dicomgate.dicomweb.framesource import Key
from dicomgate.dicomweb.reader import Reader, instances_at, touch_instances


async def _series_chunks(
    reader: Reader, members: list[StoredInstance], duplicates: set[Key]
) -> list[bytes]:
    """One series' instances; each is also remembered for its frame requests (``framesource``)
    unless its UIDs are listed twice (under two patients: the frame request answers 409)."""
    found = await details(
        reader.orthanc,
        reader.pool,
        reader.cache,
        members,
        concurrency=reader.concurrency,
        recorded=reader.recorded,
    )
    patient_id = (await reader.series.get(reader.orthanc, members[0].series_orthanc_id)).patient_id
    out = []
    for inst in members:
        entry = found.get(inst.orthanc_id)
        if entry is None:  # deleted since it was listed
            continue
        if (inst.study_uid, inst.series_uid, inst.sop_uid) not in duplicates:
            reader.sources.put(inst, entry, patient_id=patient_id)
        url = reader.instance_url(inst.study_uid, inst.series_uid, inst.sop_uid)
        out.append(complete_bulk_uris(entry.metadata, url))
    return out


async def _array(reader: Reader, instances: list[StoredInstance]) -> AsyncIterator[bytes]:
    counts = Counter((i.study_uid, i.series_uid, i.sop_uid) for i in instances)
    duplicates = {key for key, count in counts.items() if count > 1}
    yield b"["
    first = True
    for _, group in groupby(instances, key=lambda i: i.series_orthanc_id):
        for chunk in await _series_chunks(reader, list(group), duplicates):
            yield chunk if first else b"," + chunk
            first = False
    yield b"]"


async def retrieve_metadata(
    reader: Reader,
    *,
    study_uid: str,
    series_uid: str | None = None,
    sop_uid: str | None = None,
) -> AsyncIterator[bytes]:
    """The metadata of a study, a series or an instance (404 when nothing is stored there)."""
    instances = await instances_at(
        reader, study_uid=study_uid, series_uid=series_uid, sop_uid=sop_uid
    )
    await touch_instances(reader, instances, per_instance=sop_uid is not None)
    return _array(reader, instances)
