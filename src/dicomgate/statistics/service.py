"""Storage statistics: one Orthanc call and one grouped query, whatever the archive's size.

Orthanc 1.10 cannot say which transfer syntax its instances use without reading each one's
header (one request per instance), far too slow on a big archive for every call. So dicomgate
records what it writes (``stored_instances``: one row per instance, kept as uploads, conversions
and deletes go) and counts that; Orthanc's ``/statistics`` gives the totals.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dicomgate.codec.profiles import HTJ2K_SYNTAXES
from dicomgate.orthanc import OrthancClient
from dicomgate.statistics.models import StoredInstance
from dicomgate.statistics.schemas import (
    Htj2kShare,
    ModalityStatistics,
    OrthancCounts,
    SavedBytes,
    StorageStatistics,
)


def _int(value: Any) -> int:
    """Orthanc's numbers, some sent as strings (``"TotalDiskSize": "93780"``)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def orthanc_counts(answer: dict[str, Any]) -> OrthancCounts:
    """Orthanc's ``/statistics`` answer in dicomgate's names."""
    return OrthancCounts(
        patients=_int(answer.get("CountPatients")),
        studies=_int(answer.get("CountStudies")),
        series=_int(answer.get("CountSeries")),
        instances=_int(answer.get("CountInstances")),
        disk_size_bytes=_int(answer.get("TotalDiskSize")),
        uncompressed_size_bytes=_int(answer.get("TotalUncompressedSize")),
    )


def _ratio(original: int, stored: int) -> float | None:
    return round(original / stored, 3) if stored > 0 else None


async def storage_statistics(session: AsyncSession, orthanc: OrthancClient) -> StorageStatistics:
    """Orthanc's counts and size, bytes saved by ingest and conversions, HTJ2K share, per
    modality compression."""
    counts = orthanc_counts(await orthanc.statistics())
    table = StoredInstance
    is_htj2k = case((table.transfer_syntax.in_(sorted(HTJ2K_SYNTAXES)), 1), else_=0)
    rows = (
        await session.execute(
            select(
                table.modality,
                func.count(),
                func.sum(is_htj2k),
                func.sum(table.original_size),
                func.sum(table.stored_size),
                func.count(table.ingest_saved),
                func.sum(table.ingest_saved),
                func.count(table.conversion_saved),
                func.sum(table.conversion_saved),
            ).group_by(table.modality)
        )
    ).all()
    modalities: list[ModalityStatistics] = []
    ingested, conversions, htj2k = [0, 0], [0, 0], 0
    for modality, count, htj2k_count, original, stored, n_in, saved_in, n_conv, saved_conv in rows:
        original, stored = _int(original), _int(stored)
        modalities.append(
            ModalityStatistics(
                modality=modality,
                instances=count,
                htj2k_instances=_int(htj2k_count),
                bytes_original=original,
                bytes_stored=stored,
                compression_ratio=_ratio(original, stored),
            )
        )
        htj2k += _int(htj2k_count)
        ingested[0] += _int(n_in)
        ingested[1] += _int(saved_in)
        conversions[0] += _int(n_conv)
        conversions[1] += _int(saved_conv)
    ingest = SavedBytes(instances=ingested[0], bytes_saved=ingested[1])
    modalities.sort(key=lambda m: (-m.instances, m.modality or "~"))
    share = min(1.0, round(htj2k / counts.instances, 4)) if counts.instances else None
    return StorageStatistics(
        orthanc=counts,
        ingest=ingest,
        conversions=SavedBytes(instances=conversions[0], bytes_saved=conversions[1]),
        htj2k=Htj2kShare(instances=htj2k, share=share),
        modalities=modalities,
    )
