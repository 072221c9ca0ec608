"""Two real Orthanc 1.10 nodes on one PostgreSQL index and one storage folder (issue 16's
topology): what one stores, the other lists, serves byte for byte and deletes; stores through both
at once leave each instance exactly once. Also pinned: what the nodes do not share (the watch for
stable series), which the rules follower must live with."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.builders import make_dataset, to_bytes
from tests.orthanc_cluster import shared_index_nodes
from tests.orthanc_process import OrthancProcess

pytestmark = pytest.mark.postgres

INSTANCES = 40  # 20 through each node, all at once
SENDERS = 8


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[list[OrthancProcess]]:
    """One pair for the module: an Orthanc takes about 3 s to stop (its HTTP server)."""
    async with shared_index_nodes(tmp_path_factory.mktemp("cluster"), 2) as started:
        yield started


@pytest.fixture
def nodes(cluster: list[OrthancProcess]) -> list[OrthancProcess]:
    """Both nodes running, and nothing stored."""
    for node in cluster:
        node.start()
    cluster[0].clear()
    assert stored_files(cluster[0]) == []
    return cluster


def study(*, series_count: int, per_series: int) -> list[Dataset]:
    """The instances of one new study of patient P1, series after series."""
    study_uid = generate_uid()
    out = []
    for _ in range(series_count):
        series_uid = generate_uid()
        out += [
            make_dataset(study_uid=study_uid, series_uid=series_uid, instance_number=number)
            for number in range(1, per_series + 1)
        ]
    return out


def stored_files(node: OrthancProcess) -> list[Path]:
    return [path for path in node.storage_dir.rglob("*") if path.is_file()]


def sop_instance_uids(node: OrthancProcess) -> Counter[str]:
    """Every instance the node's index lists, by SOP Instance UID (a duplicate counts twice)."""
    answer = httpx.post(
        f"{node.url}/tools/find",
        json={"Level": "Instance", "Query": {}, "Expand": True},
        timeout=30,
    )
    answer.raise_for_status()
    return Counter(item["MainDicomTags"]["SOPInstanceUID"] for item in answer.json())


def changes(node: OrthancProcess) -> list[tuple[str, str]]:
    answer = httpx.get(f"{node.url}/changes", params={"limit": 1000}).json()
    assert answer["Done"]
    return [(change["ChangeType"], change["ID"]) for change in answer["Changes"]]


def test_what_one_node_stores_the_other_lists_serves_and_deletes(
    nodes: list[OrthancProcess],
) -> None:
    a, b = nodes
    data = to_bytes(make_dataset())
    instance = a.store(data)["ID"]

    assert httpx.get(f"{b.url}/instances").json() == [instance]
    served = httpx.get(f"{b.url}/instances/{instance}/file")
    assert served.status_code == 200 and served.content == data  # byte-identical
    assert len(stored_files(a)) == 1

    assert httpx.delete(f"{b.url}/instances/{instance}").status_code == 200
    assert httpx.get(f"{a.url}/instances/{instance}").status_code == 404
    assert httpx.get(f"{a.url}/instances").json() == []
    assert httpx.get(f"{a.url}/statistics").json()["CountInstances"] == 0
    assert stored_files(a) == []  # the deleting node removed the file from the shared folder


def test_instances_stored_through_both_nodes_at_once_are_each_present_once(
    nodes: list[OrthancProcess],
) -> None:
    """Both nodes create the same patient, studies and series at the same moment: the index
    plugin's serializable transactions collide and Orthanc replays the loser. Two studies of two
    series, each series' instances split between the nodes."""
    a, b = nodes
    datasets = [*study(series_count=2, per_series=10), *study(series_count=2, per_series=10)]
    expected = Counter(str(ds.SOPInstanceUID) for ds in datasets)
    assert len(expected) == INSTANCES

    with ThreadPoolExecutor(SENDERS) as pool:  # alternate nodes: each series goes through both
        stores = [
            pool.submit(nodes[number % 2].store, to_bytes(ds)) for number, ds in enumerate(datasets)
        ]
        for store in stores:
            assert store.result()["Status"] == "Success"

    for node in (a, b):
        assert sop_instance_uids(node) == expected  # each exactly once, through either node
        statistics = httpx.get(f"{node.url}/statistics").json()
        assert (statistics["CountPatients"], statistics["CountStudies"]) == (1, 2)
        assert (statistics["CountSeries"], statistics["CountInstances"]) == (4, INSTANCES)
        for series_id in httpx.get(f"{node.url}/series").json():
            assert len(httpx.get(f"{node.url}/series/{series_id}").json()["Instances"]) == 10
    assert len(stored_files(a)) == INSTANCES  # one file each: no orphan from a replayed store


def eventually(check: Callable[[], bool], *, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"still not {what} after {timeout} s"
        time.sleep(0.1)


def stable_marks(node: OrthancProcess) -> Counter[str]:
    """How many times each series was marked stable in ``/changes``."""
    return Counter(resource for kind, resource in changes(node) if kind == "StableSeries")


def test_changes_are_shared_but_each_node_watches_stability_of_its_own_arrivals(
    nodes: list[OrthancProcess],
) -> None:
    """The caveats of Orthanc 1.10 on a shared index, pinned so that a newer Orthanc that changes
    them shows up here: ``/changes`` is the index's (the same through any node), but each node
    watches only what it received. So a series stored through both nodes is marked stable twice;
    ``IsStable`` is the answering node's own view; and a node that dies within ``StableAge`` of
    an arrival never marks that series stable, not after a restart either."""
    a, b = nodes
    split = study(series_count=1, per_series=2)
    split_series = a.store(to_bytes(split[0]))["ParentSeries"]
    b.store(to_bytes(split[1]))
    eventually(lambda: stable_marks(b)[split_series] == 2, what="marked by both nodes")

    lost_series = a.store(to_bytes(make_dataset()))["ParentSeries"]
    control_series = b.store(to_bytes(make_dataset()))["ParentSeries"]
    assert httpx.get(f"{a.url}/series/{lost_series}").json()["IsStable"] is False
    assert httpx.get(f"{b.url}/series/{lost_series}").json()["IsStable"] is True  # B's own view
    a.kill()  # within StableAge (1 s) of the arrival
    a.start()
    eventually(lambda: stable_marks(b)[control_series] == 1, what="control marked")
    time.sleep(1)  # the lost series arrived at the same time: its mark would be due

    assert stable_marks(b)[lost_series] == 0
    assert ("NewSeries", lost_series) in changes(b)
    assert changes(a) == changes(b)
    assert stable_marks(b)[split_series] == 2
