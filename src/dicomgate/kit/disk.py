"""No space left on the disk an upload is worked on: the one mapping of ENOSPC to a 507.

The spool (DICOMGATE_SPOOL_DIR) holds every uploaded file, expanded zip entries and each
worker's output until Orthanc has it. When that disk fills, the request fails as a whole with
507 Insufficient Storage (RFC 4918 §11.5) and a message that says so, not a bare 500, and
nothing of it is stored (folder uploads store only after every file is prepared).
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

from dicomgate.errors import InsufficientStorage

DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def insufficient_storage(exc: OSError, what: str) -> InsufficientStorage | None:
    """The 507 for a disk-full OSError met while ``what``; None for any other OSError."""
    if exc.errno not in DISK_FULL:
        return None
    return InsufficientStorage(
        f"The server ran out of disk space while {what} (its upload spool, "
        "DICOMGATE_SPOOL_DIR, is full); nothing was stored. Retry later."
    )


@contextmanager
def disk_full_is_507(what: str) -> Iterator[None]:
    """Within: a disk-full OSError becomes InsufficientStorage (507); others propagate."""
    try:
        yield
    except OSError as exc:
        full = insufficient_storage(exc, what)
        if full is None:
            raise
        raise full from None
