"""The ``api_keys`` table: service-to-service keys, stored only as hashes."""

from __future__ import annotations

import datetime

from sqlalchemy import Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from dicomgate.db import Base, UtcDateTime


class ApiKey(Base):
    """One API key: a public prefix to find it, the SHA-256 of its secret, its scopes."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime(), server_default=func.now())
    revoked_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime(), nullable=True)

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes.split())
