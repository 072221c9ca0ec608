"""The ``patients`` table: the cache of patient demographics that uploads stamp from."""

from __future__ import annotations

import datetime

from sqlalchemy import CheckConstraint, Date, Index, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from dicomgate.db import Base, UtcDateTime
from dicomgate.dicom.demographics import Demographics

GENDERS: tuple[str, ...] = ("male", "female", "other", "unknown")
PATIENT_ID_MAX = 64  # PS3.5 §6.2: Patient ID is LO, at most 64 characters
NAME_MAX = 64  # PS3.5 §6.2: each PN component group is at most 64 characters


class Patient(Base):
    """One patient as the EMR side knows them."""

    __tablename__ = "patients"
    __table_args__ = (
        CheckConstraint("gender IN ('male', 'female', 'other', 'unknown')", name="gender"),
        Index("ix_patients_family_given", "family_name", "given_name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(PATIENT_ID_MAX), unique=True)
    family_name: Mapped[str] = mapped_column(String(NAME_MAX), default="")
    given_name: Mapped[str] = mapped_column(String(NAME_MAX), default="")
    birth_date: Mapped[datetime.date | None] = mapped_column(Date, nullable=True)
    gender: Mapped[str] = mapped_column(String(16), default="unknown")
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime(), server_default=func.now())
    updated_at: Mapped[datetime.datetime] = mapped_column(
        UtcDateTime(), server_default=func.now(), onupdate=func.now()
    )

    def demographics(self) -> Demographics:
        """The patient's identity as plain data for DICOM stamping."""
        return Demographics(
            patient_id=self.patient_id,
            family_name=self.family_name,
            given_name=self.given_name,
            birth_date=self.birth_date,
            gender=self.gender,
        )
