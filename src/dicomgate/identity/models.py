"""The ``instance_claims`` table: which patient (and which content) owns a SOP Instance UID.

A row is taken, in its own short committed transaction, before an instance is sent to Orthanc
(state ``storing``, with a lease), and settled to ``stored`` once Orthanc holds it. The primary
key on the SOP Instance UID is the lock: of two concurrent uploads of one instance, on one
process or on several replicas sharing the database, only one can hold the row.
"""

from __future__ import annotations

import datetime

from sqlalchemy import String, func
from sqlalchemy.orm import Mapped, mapped_column

from dicomgate.db import Base, UtcDateTime

UID_MAX = 64  # PS3.5 §9.1

STORING = "storing"
STORED = "stored"


class InstanceClaim(Base):
    """The patient, place and content fingerprint dicomgate stored (or is storing) a UID with."""

    __tablename__ = "instance_claims"

    sop_instance_uid: Mapped[str] = mapped_column(String(UID_MAX), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64))
    study_instance_uid: Mapped[str] = mapped_column(String(UID_MAX))
    series_instance_uid: Mapped[str] = mapped_column(String(UID_MAX))
    fingerprint: Mapped[str] = mapped_column(String(130))  # "<attributes>:<pixels>"
    state: Mapped[str] = mapped_column(String(8))  # storing | stored
    token: Mapped[str] = mapped_column(String(32))  # who holds it; changes on every take
    lease_until: Mapped[datetime.datetime] = mapped_column(UtcDateTime())
    orthanc_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    file_uuid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[datetime.datetime] = mapped_column(
        UtcDateTime(), server_default=func.now(), onupdate=func.now()
    )
