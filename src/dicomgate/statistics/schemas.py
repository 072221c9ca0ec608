"""The answer of ``GET /api/ris/statistics/``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

BASIS = (
    "orthanc: Orthanc's own /statistics, now. Everything else: the instances dicomgate stored "
    "(uploads, STOW-RS) or converted in place, from this version on, that Orthanc still holds: "
    "deletions through dicomgate are followed, instances stored or deleted in Orthanc directly "
    "are not seen (they count as not HTJ2K in the share)."
)


class OrthancCounts(BaseModel):
    """Orthanc's ``/statistics``."""

    patients: int
    studies: int
    series: int
    instances: int
    disk_size_bytes: int = Field(description="Bytes Orthanc's storage area uses.")
    uncompressed_size_bytes: int = Field(
        description="The same files before Orthanc's own storage compression (if enabled)."
    )


class SavedBytes(BaseModel):
    """Instances one path wrote and the bytes it saved on them (negative: it added bytes)."""

    instances: int
    bytes_saved: int


class Htj2kShare(BaseModel):
    """How many of Orthanc's instances dicomgate knows to be stored as HTJ2K."""

    instances: int
    share: float | None = Field(
        description="instances / Orthanc's instance count, 0–1 (null when Orthanc is empty)."
    )


class ModalityStatistics(BaseModel):
    """One modality of what dicomgate wrote: counts, bytes, compression."""

    modality: str | None = Field(description="Modality (0008,0060); null when not known.")
    instances: int
    htj2k_instances: int
    bytes_original: int = Field(description="As received (or as stored before a conversion).")
    bytes_stored: int
    compression_ratio: float | None = Field(
        description="bytes_original / bytes_stored (2.0 means half the size); null if empty."
    )


class StorageStatistics(BaseModel):
    """Orthanc's counts and size, and what dicomgate's transcoding saved."""

    success: bool = True
    orthanc: OrthancCounts
    ingest: SavedBytes = Field(description="Stored by uploads (and STOW-RS).")
    conversions: SavedBytes = Field(description="Converted in place by conversion jobs.")
    htj2k: Htj2kShare
    modalities: list[ModalityStatistics] = Field(description="Most instances first.")
    basis: str = Field(default=BASIS, description="What the figures cover.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "success": True,
                    "orthanc": {
                        "patients": 2,
                        "studies": 3,
                        "series": 3,
                        "instances": 4,
                        "disk_size_bytes": 93780,
                        "uncompressed_size_bytes": 93780,
                    },
                    "ingest": {"instances": 4, "bytes_saved": 197810},
                    "conversions": {"instances": 0, "bytes_saved": 0},
                    "htj2k": {"instances": 3, "share": 0.75},
                    "modalities": [
                        {
                            "modality": "US",
                            "instances": 2,
                            "htj2k_instances": 2,
                            "bytes_original": 241540,
                            "bytes_stored": 62450,
                            "compression_ratio": 3.868,
                        },
                        {
                            "modality": "NM",
                            "instances": 2,
                            "htj2k_instances": 1,
                            "bytes_original": 49060,
                            "bytes_stored": 30340,
                            "compression_ratio": 1.617,
                        },
                    ],
                    "basis": BASIS,
                }
            ]
        }
    )
