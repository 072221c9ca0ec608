"""Worker-pool task: the identity and content fingerprint of a file Orthanc already stores."""

from __future__ import annotations

from pathlib import Path

import pydicom

from dicomgate.codec.transcode import frame_crc32s
from dicomgate.dicom.fingerprint import InstanceIdentity, instance_identity


def stored_identity(path: str) -> InstanceIdentity:
    """Read a stored instance (downloaded to ``path``) and fingerprint it like a new upload.

    The pixels are decoded (whatever their transfer syntax) for their frame CRCs; where they
    cannot be, the fingerprint falls back to the Pixel Data bytes, as for a new upload.
    """
    try:
        crcs = frame_crc32s(Path(path).read_bytes())
    except Exception:  # undecodable here: compared by its bytes (see dicom/fingerprint.py)
        crcs = ()
    return instance_identity(pydicom.dcmread(path, defer_size=1024 * 1024), crcs)
