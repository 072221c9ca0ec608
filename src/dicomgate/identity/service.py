"""The identity guard: one SOP Instance UID, one instance, one patient — checked before storing.

Every ingest path (upload routes, folder upload, zip, STOW-RS) stores through ``store``:

1. **Claim** the SOP Instance UID (``instance_claims``, its own committed transaction: an
   insert, and only when the UID is claimed already a read of that claim). The
   primary key makes the claim exclusive: while one upload holds it (``storing``, under a
   lease), another for a different patient or content is refused at once (``InstanceBusy``)
   and one for the very same instance waits for the first to finish. This is what makes two
   concurrent uploads of one instance to two patients impossible, across replicas too.
2. **Check Orthanc** (``/tools/find`` on the SOP Instance UID): it is the truth for instances
   that arrived without dicomgate and for ones deleted since. Held under another Patient ID →
   ``PatientConflict``; under this patient but in another study or series → ``ContentConflict``;
   in the very same place → compare the content fingerprints (``dicom/fingerprint.py``): the
   claim's, when Orthanc still holds the file the claim was settled with, else the stored
   file's, downloaded and fingerprinted in the worker pool. Different → ``ContentConflict``;
   identical → the upload goes on and Orthanc answers ``AlreadyStored`` (idempotent).
3. **Store**, then settle the claim (``stored``, with Orthanc's ID and file UUID; the caller's
   own rows about the instance, the storage statistics, in the same transaction). Anything
   failing on the way gives the claim back as it was: nothing stored, nothing claimed.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from dicomgate.audit.context import AuditNotes
from dicomgate.codec.pool import WorkerPool
from dicomgate.dicom.fingerprint import InstanceIdentity, differences
from dicomgate.errors import (
    ContentConflict,
    DatabaseUnavailable,
    IdentityConflict,
    InstanceBusy,
    PatientConflict,
)
from dicomgate.identity.claims import (
    Claim,
    Sessions,
    give_back_claim,
    insert_claim,
    read_claim,
    settle_claim,
    take_over_claim,
)
from dicomgate.identity.models import STORED
from dicomgate.identity.worker import stored_identity
from dicomgate.orthanc import OrthancClient
from dicomgate.orthanc_models import StoredInstance

log = logging.getLogger(__name__)

ALREADY_STORED = "AlreadyStored"  # Orthanc's Status for an instance it holds already
MOVE_ELSEWHERE = (
    "Moving images between patients is a separate administrative action, not a side effect "
    "of an upload"
)
CLAIM_LEASE = datetime.timedelta(minutes=15)  # a claim left by a crashed process expires
WAIT_FOR_SAME = 30.0  # seconds an upload of the same instance waits for the one storing it
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class StoredAttachment:
    """The file Orthanc holds for an instance just stored: its UUID and MD5 (None: not said)."""

    uuid: str | None
    md5: str | None


# The caller's rows about a stored instance (``store(record=…)``), in the settling transaction:
# (session, *, answer: StoredInstance, attachment: StoredAttachment | None), the attachment
# read when the instance is new to Orthanc (else None).
Record = Callable[..., Awaitable[None]]

IDENTITY_CONFLICTS = frozenset(
    cls.__name__ for cls in (IdentityConflict, PatientConflict, ContentConflict, InstanceBusy)
)


def is_identity_conflict(error_type: str | None) -> bool:
    """True for the ``type`` of an identity conflict error (409)."""
    return error_type in IDENTITY_CONFLICTS


def orthanc_instance_id(identity: InstanceIdentity) -> str:
    """The Orthanc ID of an instance: SHA-1 of ``PatientID|StudyUID|SeriesUID|SOPUID`` in five
    groups of eight hex digits (the Orthanc Book, "Orthanc identifiers"). Two instances share
    it exactly when Orthanc would answer ``AlreadyStored`` to the second."""
    key = "|".join(
        (
            identity.patient_id,
            identity.study_instance_uid,
            identity.series_instance_uid,
            identity.sop_instance_uid,
        )
    )
    digest = hashlib.sha1(key.encode("utf-8"), usedforsecurity=False).hexdigest()
    return "-".join(digest[i : i + 8] for i in range(0, 40, 8))


@dataclass(frozen=True)
class Verdict:
    """What Orthanc holds under the UID: nothing, or this very instance (same content)."""

    orthanc_id: str | None = None
    file_uuid: str | None = None


@dataclass(frozen=True)
class Admission:
    """A claim held by this upload, and what Orthanc held when it was checked."""

    token: str
    previous: Claim | None
    verdict: Verdict


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _uid_text(identity: InstanceIdentity) -> str:
    return f"SOP Instance UID {identity.sop_instance_uid}"


class IdentityGuard:
    """Claims, checks and settles SOP Instance UIDs around each store (see the module doc)."""

    def __init__(self, *, orthanc: OrthancClient, pool: WorkerPool, sessions: Sessions) -> None:
        self.orthanc = orthanc
        self.pool = pool
        self.sessions = sessions

    async def store(
        self,
        identity: InstanceIdentity,
        send: Callable[[], Awaitable[StoredInstance]],
        *,
        scratch: Path,
        notes: AuditNotes,
        record: Record | None = None,
    ) -> StoredInstance:
        """Claim, check, ``send()`` to Orthanc, settle; Orthanc's answer. Identity conflicts
        raise (409) and nothing is stored. ``scratch``: where a stored copy may be downloaded.
        ``notes``: the request's audit notes (what was touched, and what it conflicted with).
        ``record``: the caller's rows about the stored instance, written in the transaction
        that settles the claim; best effort (if that transaction fails, the claim is settled
        alone and the failure logged: the instance is stored whatever happens to them).
        """
        notes.touched(
            patient_ids=[identity.patient_id],
            study_instance_uids=[identity.study_instance_uid],
            series_instance_uids=[identity.series_instance_uid],
            sop_instance_uids=[identity.sop_instance_uid],
        )
        try:
            answer = await self._store(identity, send, scratch, record)
        except IdentityConflict as exc:
            notes.conflict(
                sop_instance_uid=identity.sop_instance_uid,
                patient_id=identity.patient_id,
                existing_patient_id=exc.existing_patient_id,
                existing_orthanc_id=exc.existing_orthanc_id,
                reason=exc.type,
            )
            raise
        notes.touched(
            orthanc_ids=[
                answer.parent_patient,
                answer.parent_study,
                answer.parent_series,
                answer.id,
            ]
        )
        return answer

    async def _store(
        self,
        identity: InstanceIdentity,
        send: Callable[[], Awaitable[StoredInstance]],
        scratch: Path,
        record: Record | None,
    ) -> StoredInstance:
        admission = await self._admit(identity, scratch)
        try:
            answer = await send()
            orthanc_id = answer.id
            file_uuid = admission.verdict.file_uuid
            attachment = None
            if admission.verdict.orthanc_id != orthanc_id:
                if answer.status == ALREADY_STORED:
                    # Stored without dicomgate since the check: Orthanc kept its own copy.
                    await self._require_same(identity, orthanc_id, scratch, known=None)
                attachment = await self._attachment(orthanc_id)
                file_uuid = attachment.uuid
            settle = partial(
                settle_claim,
                self.sessions,
                identity.sop_instance_uid,
                token=admission.token,
                orthanc_id=orthanc_id,
                file_uuid=file_uuid,
            )
            also = None if record is None else partial(record, answer=answer, attachment=attachment)
            await self._settle(settle, also)
        except BaseException:
            await self._give_back(identity, admission)
            raise
        return answer

    @staticmethod
    async def _settle(
        settle: Callable[..., Awaitable[None]],
        also: Callable[[AsyncSession], Awaitable[None]] | None,
    ) -> None:
        """Settle the claim with the caller's rows in one transaction; alone if that fails."""
        if also is not None:
            try:
                await settle(also=also)
                return
            except (SQLAlchemyError, DatabaseUnavailable, OSError) as exc:
                log.warning(
                    "The rows recorded with a stored instance were not written (%s); its claim "
                    "is settled alone",
                    type(exc).__name__,
                )
        await settle()

    # --- Claiming ------------------------------------------------------------------------------
    async def _admit(self, identity: InstanceIdentity, scratch: Path) -> Admission:
        deadline = time.monotonic() + WAIT_FOR_SAME
        # The usual case, a UID never claimed: take it at once (an insert, without reading
        # first); an existing claim makes the insert fail, and is read and judged below.
        admitted = await self._take(identity, None, scratch)
        if admitted is not None:
            return admitted
        while True:
            claim = await read_claim(self.sessions, identity.sop_instance_uid)
            if claim is not None and claim.in_flight(_utcnow()):
                if not claim.describes(identity):
                    raise self._busy(identity, claim)
                if time.monotonic() > deadline:
                    raise InstanceBusy(
                        f"{_uid_text(identity)} is being stored by another upload that has not "
                        "finished: retry later; nothing was stored",
                        sop_instance_uid=identity.sop_instance_uid,
                        existing_patient_id=claim.patient_id,
                    )
                await asyncio.sleep(POLL_SECONDS)
                continue
            if claim is not None and not claim.describes(identity):
                # Refuse without disturbing the claim when Orthanc holds a conflicting copy.
                await self._verdict(identity, None, scratch)
            admitted = await self._take(identity, claim, scratch)
            if admitted is not None:
                return admitted
            # another upload changed the claim first: look again

    async def _take(
        self, identity: InstanceIdentity, claim: Claim | None, scratch: Path
    ) -> Admission | None:
        """Insert the claim (``claim`` None) or take ``claim`` over, then check Orthanc under
        it; None when another upload inserted or changed the claim first."""
        held = Admission(uuid.uuid4().hex, claim, Verdict())
        lease_until = _utcnow() + CLAIM_LEASE
        try:
            if claim is None:
                taken = await insert_claim(
                    self.sessions, identity, token=held.token, lease_until=lease_until
                )
            else:
                taken = await take_over_claim(
                    self.sessions,
                    identity,
                    previous=claim,
                    token=held.token,
                    lease_until=lease_until,
                )
            if not taken:
                return None
            # Under the claim, the check that counts.
            verdict = await self._verdict(identity, claim, scratch)
        except BaseException:
            # Also when cancelled mid-write: the give-back only touches our own token.
            await self._give_back(identity, held)
            raise
        return Admission(held.token, claim, verdict)

    async def _give_back(self, identity: InstanceIdentity, admission: Admission) -> None:
        """Put the claim back as it was (runs to its end even in a cancelled request)."""
        try:
            await give_back_claim(
                self.sessions,
                identity.sop_instance_uid,
                token=admission.token,
                previous=admission.previous,
            )
        except Exception:  # the lease frees it later; Orthanc stays the truth meanwhile
            log.exception("Could not give back the claim on an instance")

    @staticmethod
    def _busy(identity: InstanceIdentity, claim: Claim) -> InstanceBusy:
        whose = (
            "for another patient"
            if claim.patient_id != identity.patient_id
            else "with other content or in another study or series"
        )
        return InstanceBusy(
            f"{_uid_text(identity)} is being stored right now by another upload {whose}: an "
            f"instance belongs to one patient only. {MOVE_ELSEWHERE}; nothing was stored",
            sop_instance_uid=identity.sop_instance_uid,
            existing_patient_id=claim.patient_id,
        )

    # --- Checking Orthanc --------------------------------------------------------------------
    async def _verdict(
        self, identity: InstanceIdentity, previous: Claim | None, scratch: Path
    ) -> Verdict:
        """Raise if Orthanc holds the UID in a way this upload conflicts with; else say what."""
        found = await self.orthanc.find(
            "Instance", {"SOPInstanceUID": identity.sop_instance_uid}, expand=True
        )
        here = orthanc_instance_id(identity)
        same_place: dict[str, Any] | None = None
        for instance in found:
            if not isinstance(instance, dict) or "ID" not in instance:
                continue
            if instance["ID"] == here:
                same_place = instance
                continue
            owner = await self._patient_of(str(instance["ID"]))
            if owner != identity.patient_id:
                raise PatientConflict(
                    f"{_uid_text(identity)} is already stored under another patient: an "
                    f"instance belongs to one patient only. {MOVE_ELSEWHERE}; nothing was stored",
                    sop_instance_uid=identity.sop_instance_uid,
                    existing_patient_id=owner,
                    existing_orthanc_id=str(instance["ID"]),
                )
            raise ContentConflict(
                f"{_uid_text(identity)} is already stored for this patient in another study or "
                "series: an instance has one place (a copy elsewhere needs a new SOP Instance "
                "UID); nothing was stored",
                sop_instance_uid=identity.sop_instance_uid,
                existing_patient_id=owner,
                existing_orthanc_id=str(instance["ID"]),
            )
        if same_place is None:
            return Verdict()
        file_uuid = str(same_place.get("FileUuid") or "") or None
        # The claim describes the stored file only while Orthanc still holds that very file.
        known = (
            previous.fingerprint
            if previous is not None
            and previous.state == STORED
            and previous.orthanc_id == here
            and file_uuid is not None
            and previous.file_uuid == file_uuid
            else None
        )
        await self._require_same(identity, here, scratch, known=known)
        return Verdict(orthanc_id=here, file_uuid=file_uuid)

    async def _require_same(
        self, identity: InstanceIdentity, orthanc_id: str, scratch: Path, *, known: str | None
    ) -> None:
        """Raise ContentConflict unless the stored instance has ``identity``'s fingerprint
        (``known``: the stored file's fingerprint, when the claim has it; else it is read)."""
        stored = known or (await self._stored_identity(orthanc_id, scratch)).fingerprint
        if stored == identity.fingerprint:
            return
        what = " and ".join(differences(identity.fingerprint, stored)) or "content"
        raise ContentConflict(
            f"{_uid_text(identity)} is already stored with different {what}: a changed "
            "instance needs a new SOP Instance UID; nothing was stored",
            sop_instance_uid=identity.sop_instance_uid,
            existing_patient_id=identity.patient_id,
            existing_orthanc_id=orthanc_id,
        )

    async def _patient_of(self, orthanc_id: str) -> str:
        patient = await self.orthanc.parent("instances", orthanc_id, "patients")
        return str((patient.get("MainDicomTags") or {}).get("PatientID") or "")

    async def _attachment(self, orthanc_id: str) -> StoredAttachment:
        """The UUID and MD5 of the file Orthanc holds for the instance (one call)."""
        info = await self.orthanc.resource("instances", orthanc_id, "attachments/dicom/info")
        return StoredAttachment(
            uuid=str(info.get("Uuid") or "") or None,
            md5=str(info.get("UncompressedMD5") or "") or None,
        )

    async def _stored_identity(self, orthanc_id: str, scratch: Path) -> InstanceIdentity:
        """Download the stored file to ``scratch`` and fingerprint it in the worker pool."""
        try:
            async with (
                self.orthanc.stream_instance_file(orthanc_id) as (_headers, chunks),
                await anyio.open_file(scratch, "wb") as out,
            ):
                async for chunk in chunks:
                    await out.write(chunk)
            identity: InstanceIdentity = await self.pool.run(stored_identity, str(scratch))
            return identity
        finally:
            await anyio.to_thread.run_sync(partial(scratch.unlink, missing_ok=True))
