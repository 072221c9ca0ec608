"""Several real Orthanc processes on one PostgreSQL index and one storage folder, as in a cluster.

The topology of issue 16: Orthanc nodes (Orthanc 1.10.1 + Debian's PostgreSQL index plugin 4.0)
sharing their index (a fresh PostgreSQL database on the test server, dropped afterwards) and
their folder of DICOM files. Any node lists, serves and deletes what another stored.

What the nodes do NOT share (Orthanc keeps it in each process): jobs (``/jobs``), and the watch
for stable resources. ``/changes`` is a table of the shared index, so every node lists every
node's changes; but a series only becomes stable (``StableSeries`` in ``/changes``, ``IsStable``)
through the node that received its instances, ``StableAge`` seconds after the last one it
received: a node stopped before then never marks it, and a series stored through two nodes is
marked once by each (see tests/test_orthanc_cluster.py, which checks both).

``/changes`` can still be followed with a cursor across nodes: every transaction that logs a
change also updates the one row that holds the last ``seq`` (the plugin's ``InsertedChange``
trigger), so under its SERIALIZABLE transactions a later ``seq`` never commits before an earlier
one; a rolled-back and replayed transaction may leave a ``seq`` unused.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.databases import fresh_database
from tests.orthanc_process import OrthancProcess


def libpq_uri(sqlalchemy_url: str) -> str:
    """``postgresql+asyncpg://u@h:p/db`` as the ``postgresql://u@h:p/db`` that libpq reads."""
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


async def stop_all(nodes: list[OrthancProcess]) -> None:
    await asyncio.gather(*(asyncio.to_thread(node.stop) for node in nodes))


@asynccontextmanager
async def shared_index_nodes(
    tmp_path: Path, count: int = 2, *, extra_config: dict[str, object] | None = None
) -> AsyncIterator[list[OrthancProcess]]:
    """``count`` running Orthanc nodes on one new PostgreSQL index and one storage folder.

    The first node starts alone (it creates the index's schema), then the others. All are
    stopped, and the database dropped, on the way out, whatever the test did to them.
    """
    storage = tmp_path / "orthanc-storage"
    async with AsyncExitStack() as stack:
        database = await stack.enter_async_context(
            fresh_database("postgresql", tmp_path, prefix="orthanc_index")
        )
        nodes = [
            OrthancProcess(
                tmp_path / f"orthanc-node-{number}",
                storage_dir=storage,
                index_database=libpq_uri(database),
                extra_config=extra_config,
            )
            for number in range(count)
        ]
        # Registered before they start: stopped (all at once) even if a start fails.
        stack.push_async_callback(stop_all, nodes)
        await asyncio.to_thread(nodes[0].start)
        await asyncio.gather(*(asyncio.to_thread(node.start) for node in nodes[1:]))
        yield nodes
