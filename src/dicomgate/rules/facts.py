"""What the rules read from Orthanc about a stable series: its tags, its instances' metadata,
and whether each instance is still to convert."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from dicomgate.codec.profiles import HTJ2K_SYNTAXES
from dicomgate.errors import NotFound
from dicomgate.kit.tasks import gather_or_cancel
from dicomgate.orthanc import OrthancClient
from dicomgate.rules.matching import InstanceFacts, SeriesFacts, parse_da


@dataclass(frozen=True)
class SeriesRead:
    """A series as Orthanc has it now: the facts the conditions read, its study, its instances."""

    facts: SeriesFacts
    study_id: str
    study_instance_uid: str
    instance_ids: tuple[str, ...]


@dataclass(frozen=True)
class InstanceRead:
    """An instance's facts, and whether it is stored in a syntax dicomgate converts from."""

    facts: InstanceFacts
    to_convert: bool


async def read_series(orthanc: OrthancClient, series_id: str) -> SeriesRead | None:
    """The series and its study's main tags (two calls); None when it is gone."""
    try:
        series = await orthanc.resource("series", series_id)
        study_id = str(series.get("ParentStudy", ""))
        study = await orthanc.resource("studies", study_id)
    except NotFound:
        return None
    series_tags = series.get("MainDicomTags") or {}
    study_tags = study.get("MainDicomTags") or {}
    facts = SeriesFacts(
        modality=str(series_tags.get("Modality", "") or ""),
        station_name=str(series_tags.get("StationName", "") or ""),
        institution=str(study_tags.get("InstitutionName", "") or ""),
        study_date=parse_da(str(study_tags.get("StudyDate", "") or "")),
    )
    return SeriesRead(
        facts=facts,
        study_id=study_id,
        study_instance_uid=str(study_tags.get("StudyInstanceUID", "") or ""),
        instance_ids=tuple(str(i) for i in series.get("Instances") or ()),
    )


async def read_instances(
    orthanc: OrthancClient, instance_ids: tuple[str, ...], *, concurrency: int
) -> list[InstanceRead]:
    """Each instance's metadata (SOP Class, calling AE title, transfer syntax); instances gone
    meanwhile are left out.

    Orthanc 1.10 records no ``TransferSyntax`` for syntaxes its DCMTK does not know, HTJ2K among
    them: then the stored file's header says (one more call).
    """
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(orthanc_id: str) -> InstanceRead | None:
        async with gate:
            try:
                metadata = await orthanc.metadata("instances", orthanc_id)
                syntax = metadata.get("TransferSyntax") or ""
                if not syntax:
                    syntax = (await orthanc.instance_header(orthanc_id)).transfer_syntax
            except NotFound:
                return None
        facts = InstanceFacts(
            orthanc_id=orthanc_id,
            sop_class_uid=str(metadata.get("SopClassUid", "") or ""),
            calling_aet=str(metadata.get("RemoteAET", "") or ""),
        )
        return InstanceRead(facts, to_convert=syntax not in HTJ2K_SYNTAXES)

    found = await gather_or_cancel([one(i) for i in instance_ids])
    return [read for read in found if read is not None]
