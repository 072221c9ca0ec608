"""Idempotent folder uploads: Study/Series Instance UIDs derived from the client's ``upload_id``.

A folder upload gives its files a new StudyInstanceUID and one new SeriesInstanceUID per folder.
When those are random, a client that retries after losing the answer (a timeout while the files
were in fact stored) gets a second, duplicate study. With an ``upload_id`` the UIDs are derived
from it instead (UUID-derived ``2.25.`` UIDs, ``dicom/uids.py``), so a retry rebuilds the very
same identity; Orthanc derives its IDs from these UIDs, and the retried instances are answered
``AlreadyStored`` under the same Orthanc IDs.

Every file also gets a new SOP Instance UID derived from its series' new UID and the UID it was
sent with (``instance_uid_for``): an instance placed in a new study is a new instance, so the
same folder uploaded twice (without an ``upload_id``) makes two studies whose instances share
no SOP Instance UID, while a retry (same ``upload_id``) derives the very same UIDs again.

The patient is part of the derivation: one ``upload_id`` sent for two different patients gives
two unrelated studies, never one study shared by two patients.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

from dicomgate.dicom.uids import derived_uid
from dicomgate.errors import InvalidUploadId

UPLOAD_ID_FIELD = "upload_id"
UPLOAD_ID_MIN = 16  # long enough to be unique per upload (a UUID has 36 characters)
UPLOAD_ID_MAX = 128
UPLOAD_ID_PATTERN = r"^[A-Za-z0-9._:-]+$"  # also published in the OpenAPI schema
_UPLOAD_ID_CHARS = re.compile(UPLOAD_ID_PATTERN)

# The UUIDv5 namespace of derived UIDs (fixed forever: changing it changes every derived UID,
# and a retry across the change would make a second study).
UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:dicomgate:folder-upload")


def parse_upload_id(values: Sequence[str]) -> str | None:
    """The request's ``upload_id`` (the values of the form field), or None when none was sent.

    An empty value counts as none. Raises InvalidUploadId (422) for a value of the wrong length
    or with characters other than letters, digits and ``. _ : -``, and for two different values.
    """
    sent = {value for value in values if value != ""}
    if not sent:
        return None
    if len(sent) > 1:
        raise InvalidUploadId(
            f"upload_id was sent {len(sent)} times with different values: send it once"
        )
    [upload_id] = sent
    if not UPLOAD_ID_MIN <= len(upload_id) <= UPLOAD_ID_MAX:
        raise InvalidUploadId(
            f"upload_id must be {UPLOAD_ID_MIN} to {UPLOAD_ID_MAX} characters long "
            f"(a UUID is a good choice); got {len(upload_id)}"
        )
    if not _UPLOAD_ID_CHARS.fullmatch(upload_id):  # fullmatch: "$" alone allows a final \n
        raise InvalidUploadId(
            "upload_id may contain only letters, digits and . _ : - (a UUID is a good choice)"
        )
    return upload_id


def study_uid_for(*, upload_id: str, patient_id: str) -> str:
    """The StudyInstanceUID of the folder upload ``upload_id`` for this patient."""
    return derived_uid(UID_NAMESPACE, "study", patient_id, upload_id)


def series_uid_for(*, study_uid: str, series_key: str) -> str:
    """The SeriesInstanceUID of one folder (its normalised ``series_path``) in that study."""
    return derived_uid(UID_NAMESPACE, "series", study_uid, series_key)


def instance_uid_for(*, series_uid: str, source_uid: str) -> str:
    """The new SOP Instance UID of the file sent as ``source_uid`` into that series."""
    return derived_uid(UID_NAMESPACE, "instance", series_uid, source_uid)
