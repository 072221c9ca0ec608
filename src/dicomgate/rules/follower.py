"""Following Orthanc's change log: every ``StableSeries`` change becomes a backlog row, once.

:func:`follow_changes_once` takes one batch of ``GET /changes?since=&limit=`` from the cursor
saved in the database, notes the series Orthanc marked stable and moves the cursor, all in one
transaction holding the cursor row. So each change is taken exactly once across replicas: two
followers never hold the cursor at once (the other skips its turn), and a follower killed
mid-batch commits nothing (its connection goes, its transaction rolls back): the next one takes
the same batch again. It is a plain async function, whatever runs it periodically (the service's
loop in :mod:`.service`, or a task queue).

Orthanc marks a series stable again whenever an instance is added to it (``StableAge`` seconds
after the last one), including the instances a conversion re-posts: so an instance stored later
into an already converted series gets its turn (dcm4chee-arc-light #4973 cannot happen here),
and the check after a conversion finds nothing left to do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from dicomgate import metrics
from dicomgate.db import session_scope
from dicomgate.kit.clock import utcnow
from dicomgate.rules import repository
from dicomgate.runtime import Runtime

log = logging.getLogger(__name__)

STABLE_SERIES = "StableSeries"


@dataclass(frozen=True)
class FollowerState:
    """Where the follower is, against Orthanc's latest change."""

    last_seq: int | None
    orthanc_last_seq: int | None

    @property
    def lag_changes(self) -> int:
        if self.last_seq is None or self.orthanc_last_seq is None:
            return 0
        return max(0, self.orthanc_last_seq - self.last_seq)


async def follow_changes_once(runtime: Runtime) -> int:
    """Take the next batch of Orthanc's changes; how many were taken (0: none, or another
    replica holds the cursor). The first run starts at Orthanc's latest change."""
    now = utcnow()
    async with session_scope(runtime.sessions) as session:
        cursor = await repository.take_cursor(session)
        if cursor is None:
            return 0
        if cursor.last_seq is None:
            latest = (await runtime.orthanc.changes(since=None)).last
            cursor.last_seq = cursor.orthanc_last_seq = latest
            cursor.followed_at = now
            log.info("Compression rules: following Orthanc's changes from #%d on", latest)
            return 0
        page = await runtime.orthanc.changes(
            since=cursor.last_seq, limit=runtime.settings.rules_batch_size
        )
        if page.last < cursor.last_seq:
            log.warning(
                "Orthanc's change log restarted (its latest change is #%d, the cursor was at "
                "#%d): following it from its start",
                page.last,
                cursor.last_seq,
            )
            cursor.last_seq, cursor.orthanc_last_seq, cursor.followed_at = 0, page.last, now
            return 0
        for change in page.changes:
            if change.change_type == STABLE_SERIES and change.orthanc_id:
                await repository.note_stable_series(
                    session, series_id=change.orthanc_id, seq=change.seq, at=change.date or now
                )
        head = page.last if page.done else (await runtime.orthanc.changes(since=None)).last
        cursor.last_seq = page.last
        cursor.orthanc_last_seq = head
        cursor.followed_at = now
    if page.changes:
        oldest = page.changes[0].date
        metrics.RULES_LAG_SECONDS.set(max(0.0, (now - oldest).total_seconds()) if oldest else 0)
    else:
        metrics.RULES_LAG_SECONDS.set(0)
    metrics.RULES_LAG_CHANGES.set(max(0, head - page.last))
    return len(page.changes)


async def follower_state(runtime: Runtime) -> FollowerState:
    """The cursor and Orthanc's latest change as the last follower saw them."""
    async with session_scope(runtime.sessions) as session:
        cursor = await repository.read_cursor(session)
    if cursor is None:
        return FollowerState(None, None)
    return FollowerState(cursor.last_seq, cursor.orthanc_last_seq)
