"""Patient demographics as DICOM needs them (pure: no web, no DB)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

# PS3.3 C.7.1.1 Patient's Sex (0010,0040): M, F or O; unknown is left empty (type 2).
_DICOM_SEX = {"male": "M", "female": "F", "other": "O", "unknown": ""}


@dataclass(frozen=True)
class Demographics:
    """One patient's identity as stamped into uploaded images."""

    patient_id: str
    family_name: str
    given_name: str
    birth_date: datetime.date | None
    gender: str

    @property
    def dicom_name(self) -> str:
        """Patient's Name as a PN value: ``Family^Given``, or ``Family`` alone when there is no
        given name (PS3.5 §6.2.1.1: trailing empty components and their ``^`` are left out)."""
        return f"{self.family_name}^{self.given_name}".rstrip("^")

    @property
    def dicom_birth_date(self) -> str:
        """Patient's Birth Date as a DA value ``YYYYMMDD``, or empty when unknown."""
        return self.birth_date.strftime("%Y%m%d") if self.birth_date else ""

    @property
    def dicom_sex(self) -> str:
        """Patient's Sex as ``M``/``F``/``O``, or empty for unknown (PS3.3 C.7.1.1)."""
        return _DICOM_SEX.get(self.gender, "")
