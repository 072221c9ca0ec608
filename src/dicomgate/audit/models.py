"""The ``audit_events`` table, and ``audit_event_subjects``: the index a privacy officer searches.

``resource`` holds the whole JSON object of what an event touched (patient IDs, Study / Series /
SOP Instance UIDs, Orthanc IDs, conflicts). JSON in a text column cannot be searched with an
index on SQLite, so the patient IDs and Study Instance UIDs of every event are also written as
rows of ``audit_event_subjects``, one per value, with a B-tree index on (kind, value): "every
event that touched patient P" is an index lookup on both databases.
"""

from __future__ import annotations

import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from dicomgate.db import Base, UtcDateTime

# The kinds of audit_event_subjects rows, keyed by the resource key they are taken from.
SUBJECT_KINDS: dict[str, str] = {
    "patient_ids": "patient",
    "study_instance_uids": "study",
}
SUBJECT_VALUE_MAX = 64  # PS3.5 §6.2: LO (Patient ID) and UI values are at most 64 characters


class AuditEvent(Base):
    """One audited action (including refused and failed ones)."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_at", "at"), Index("ix_audit_events_actor", "actor"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime.datetime] = mapped_column(UtcDateTime(), server_default=func.now())
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(40))
    resource: Mapped[str] = mapped_column(Text, default="{}")  # a JSON object
    client: Mapped[str] = mapped_column(String(100), default="")
    status_code: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(20))  # success | failure | denied


class AuditEventSubject(Base):
    """One patient ID or Study Instance UID an audit event touched (for indexed filters)."""

    __tablename__ = "audit_event_subjects"
    __table_args__ = (Index("ix_audit_event_subjects_kind_value", "kind", "value", "event_id"),)

    event_id: Mapped[int] = mapped_column(
        ForeignKey("audit_events.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # patient | study
    value: Mapped[str] = mapped_column(String(SUBJECT_VALUE_MAX), primary_key=True)
