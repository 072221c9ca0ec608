"""The ``instance_claims`` rows: each operation one short transaction, committed at once.

Claims must be visible to every other request (and replica) the moment they are taken, so they
never ride on a request's session: each call opens, commits and closes its own. Every change
after the first insert is conditional on the token the caller holds, so a caller that lost a
race changes nothing (and learns it from the answer).

Each operation runs to its end even when the request is cancelled meanwhile (an upload's other
files are cancelled when Orthanc fails): a transaction cut in the middle could leave a
connection holding SQLite's write lock, or a claim inserted that nobody gives back.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dicomgate.db import session_scope
from dicomgate.dicom.fingerprint import InstanceIdentity
from dicomgate.identity.models import STORED, STORING, InstanceClaim

Sessions = async_sessionmaker[AsyncSession]
P = ParamSpec("P")
T = TypeVar("T")


def _to_the_end(
    operation: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Awaitable[T]]:
    """Run ``operation`` in a task of its own and wait for its end even if cancelled meanwhile;
    the cancellation is re-raised once it is done."""

    @wraps(operation)
    async def complete(*args: P.args, **kwargs: P.kwargs) -> T:
        task = asyncio.ensure_future(operation(*args, **kwargs))
        cancelled = False
        while True:
            try:
                result = await asyncio.shield(task)
                break
            except asyncio.CancelledError:
                if task.cancelled():
                    raise
                cancelled = True  # wait for the operation, then pass the cancellation on
        if cancelled:
            raise asyncio.CancelledError
        return result

    return complete


@dataclass(frozen=True)
class Claim:
    """A claim row as read (detached from any session)."""

    sop_instance_uid: str
    patient_id: str
    study_instance_uid: str
    series_instance_uid: str
    fingerprint: str
    state: str
    token: str
    lease_until: datetime.datetime
    orthanc_id: str | None
    file_uuid: str | None

    def in_flight(self, now: datetime.datetime) -> bool:
        """Another upload holds it and is (still, by its lease) storing."""
        return self.state == STORING and self.lease_until > now

    def describes(self, identity: InstanceIdentity) -> bool:
        """Same patient, study, series and content as ``identity``."""
        return (
            self.patient_id,
            self.study_instance_uid,
            self.series_instance_uid,
            self.fingerprint,
        ) == (
            identity.patient_id,
            identity.study_instance_uid,
            identity.series_instance_uid,
            identity.fingerprint,
        )


def _claim(row: InstanceClaim) -> Claim:
    return Claim(
        sop_instance_uid=row.sop_instance_uid,
        patient_id=row.patient_id,
        study_instance_uid=row.study_instance_uid,
        series_instance_uid=row.series_instance_uid,
        fingerprint=row.fingerprint,
        state=row.state,
        token=row.token,
        lease_until=row.lease_until,
        orthanc_id=row.orthanc_id,
        file_uuid=row.file_uuid,
    )


def _values(identity: InstanceIdentity) -> dict[str, str]:
    return {
        "patient_id": identity.patient_id,
        "study_instance_uid": identity.study_instance_uid,
        "series_instance_uid": identity.series_instance_uid,
        "fingerprint": identity.fingerprint,
    }


@_to_the_end
async def read_claim(sessions: Sessions, sop_instance_uid: str) -> Claim | None:
    """The claim on a SOP Instance UID, or None."""
    async with session_scope(sessions) as session:
        row = await session.scalar(
            select(InstanceClaim).where(InstanceClaim.sop_instance_uid == sop_instance_uid)
        )
        return None if row is None else _claim(row)


@_to_the_end
async def insert_claim(
    sessions: Sessions, identity: InstanceIdentity, *, token: str, lease_until: datetime.datetime
) -> bool:
    """Take an unclaimed UID (``storing``); False when another caller inserted it first."""
    try:
        async with session_scope(sessions) as session:
            session.add(
                InstanceClaim(
                    sop_instance_uid=identity.sop_instance_uid,
                    state=STORING,
                    token=token,
                    lease_until=lease_until,
                    **_values(identity),
                )
            )
    except IntegrityError:
        return False
    return True


@_to_the_end
async def take_over_claim(
    sessions: Sessions,
    identity: InstanceIdentity,
    *,
    previous: Claim,
    token: str,
    lease_until: datetime.datetime,
) -> bool:
    """Take a settled (or abandoned) claim; False when it changed since it was read."""
    async with session_scope(sessions) as session:
        result = await session.execute(
            update(InstanceClaim)
            .where(
                InstanceClaim.sop_instance_uid == identity.sop_instance_uid,
                InstanceClaim.token == previous.token,
            )
            .values(
                state=STORING,
                token=token,
                lease_until=lease_until,
                orthanc_id=None,
                file_uuid=None,
                **_values(identity),
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


@_to_the_end
async def settle_claim(
    sessions: Sessions,
    sop_instance_uid: str,
    *,
    token: str,
    orthanc_id: str,
    file_uuid: str | None,
    also: Callable[[AsyncSession], Awaitable[None]] | None = None,
) -> None:
    """Orthanc holds the instance: the claim is ``stored`` (under the token taken). ``also``
    writes the caller's own rows in the same transaction (one commit per stored instance)."""
    async with session_scope(sessions) as session:
        await session.execute(
            update(InstanceClaim)
            .where(InstanceClaim.sop_instance_uid == sop_instance_uid, InstanceClaim.token == token)
            .values(state=STORED, orthanc_id=orthanc_id, file_uuid=file_uuid)
        )
        if also is not None:
            await also(session)


@_to_the_end
async def give_back_claim(
    sessions: Sessions, sop_instance_uid: str, *, token: str, previous: Claim | None
) -> None:
    """Nothing was stored: put the claim back as it was (or remove the one just inserted)."""
    async with session_scope(sessions) as session:
        mine = (InstanceClaim.sop_instance_uid == sop_instance_uid, InstanceClaim.token == token)
        if previous is None:
            await session.execute(delete(InstanceClaim).where(*mine))
            return
        await session.execute(
            update(InstanceClaim)
            .where(*mine)
            .values(
                patient_id=previous.patient_id,
                study_instance_uid=previous.study_instance_uid,
                series_instance_uid=previous.series_instance_uid,
                fingerprint=previous.fingerprint,
                state=previous.state,
                token=previous.token,
                lease_until=previous.lease_until,
                orthanc_id=previous.orthanc_id,
                file_uuid=previous.file_uuid,
            )
        )
