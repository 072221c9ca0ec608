"""The follower's cursor in Orthanc's ``/changes``, the series waiting for their rule, and the
rules an administrator paused. Shared by every replica through the database."""

from __future__ import annotations

import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from dicomgate.db import Base, UtcDateTime

CURSOR_ID = 1  # the one row of rules_cursor
SERIES_STATES: tuple[str, ...] = ("waiting", "queued")


class RulesCursor(Base):
    """Where the follower is in Orthanc's change log (one row, locked while a batch is taken)."""

    __tablename__ = "rules_cursor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The last change taken; None until the follower first runs (it then starts at Orthanc's
    # latest change: what was stored before is converted by a migration, not by the rules).
    last_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Orthanc's latest change when last looked at, and when: the lag is the difference.
    orthanc_last_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    followed_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # The rules file the waiting series were last decided under: another one (a restart with
    # changed rules) makes every waiting series due again.
    rules_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)


class RuleSeries(Base):
    """A series Orthanc marked stable, waiting for its rule's delay and window (the backlog).

    ``waiting``: not yet decided or not yet due; ``queued``: a conversion job was created for
    it (the row goes once the job has ended). Each new ``StableSeries`` change for the series
    makes it ``waiting`` again with a new ``version``: a decision taken on an older version is
    dropped, so no stability is ever converted twice.
    """

    __tablename__ = "rule_series"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_id: Mapped[str] = mapped_column(String(64), unique=True)  # Orthanc ID
    study_id: Mapped[str] = mapped_column(String(64), default="", server_default="")
    study_instance_uid: Mapped[str] = mapped_column(String(128), default="", server_default="")
    rule: Mapped[str | None] = mapped_column(String(64), nullable=True)  # once decided
    state: Mapped[str] = mapped_column(String(16), default="waiting", index=True)
    stable_seq: Mapped[int] = mapped_column(BigInteger)
    stable_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())
    due_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime(), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    # A replica deciding on it holds it until then (others skip it); a dead one's claim lapses.
    claimed_until: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversion_jobs.id", ondelete="SET NULL"), nullable=True
    )
    updated_at: Mapped[datetime.datetime] = mapped_column(
        UtcDateTime(), server_default=func.now(), onupdate=func.now()
    )


class RulePause(Base):
    """A rule an administrator paused: its series wait (and keep arriving) until resumed."""

    __tablename__ = "rule_pauses"

    rule: Mapped[str] = mapped_column(String(64), primary_key=True)
    paused_by: Mapped[str] = mapped_column(String(256), default="")
    paused_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime(), server_default=func.now())
