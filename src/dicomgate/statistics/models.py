"""``stored_instances``: the instances dicomgate wrote to Orthanc, as they are stored now."""

from __future__ import annotations

import datetime

from sqlalchemy import BigInteger, DateTime, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from dicomgate.db import Base


class StoredInstance(Base):
    """One instance dicomgate stored (ingest) or replaced (conversion), keyed by Orthanc ID.

    Written when Orthanc accepts a new instance from an upload, or a conversion replaces one;
    removed when dicomgate deletes it (or its series, study or patient). Sizes in bytes.
    """

    __tablename__ = "stored_instances"
    __table_args__ = (
        Index("ix_stored_instances_patient", "patient_orthanc_id"),
        Index("ix_stored_instances_study", "study_orthanc_id"),
        Index("ix_stored_instances_series", "series_orthanc_id"),
    )

    orthanc_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_orthanc_id: Mapped[str] = mapped_column(String(64), default="")
    study_orthanc_id: Mapped[str] = mapped_column(String(64), default="")
    series_orthanc_id: Mapped[str] = mapped_column(String(64), default="")
    modality: Mapped[str | None] = mapped_column(String(16), nullable=True)
    transfer_syntax: Mapped[str] = mapped_column(String(64))
    # Orthanc's attachment UUID of the file ``transfer_syntax`` describes, when dicomgate
    # verified it (the file Orthanc holds has the very bytes dicomgate sent); else None. A
    # replaced file has another UUID, so the syntax is never taken for another file.
    file_uuid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The size dicomgate first had (as uploaded, or as stored before a conversion) and now.
    original_size: Mapped[int] = mapped_column(BigInteger)
    stored_size: Mapped[int] = mapped_column(BigInteger)
    # Bytes saved by each path (None: that path did not write it); may be negative.
    ingest_saved: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    conversion_saved: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[datetime.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
