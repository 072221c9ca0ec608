"""WADO-RS with a broken worker pool: what needs a worker (decoding a stored HTJ2K frame) is a
503 with the contract's error body, never a bare 500; what needs none (the frame as stored) is
still served."""

from __future__ import annotations

import imagecodecs
import numpy as np
import requests
from dicomweb_client import DICOMwebClient
from pydicom.uid import generate_uid

from dicomgate.app import WORKER_MODULES, create_app
from dicomgate.codec.pool import loaded
from dicomgate.settings import Settings
from tests.builders import make_dataset
from tests.live_server import serve_in_thread
from tests.orthanc_process import OrthancProcess

DECODED = "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"


def test_a_broken_worker_pool_is_503_on_the_decode_path(
    settings: Settings, clean_orthanc: OrthancProcess
) -> None:
    app = create_app(
        settings.model_copy(update={"workers": 1, "resume_conversions_on_start": False})
    )
    pixels = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 7) % 4096
    ds = make_dataset(rows=64, columns=64, pixels=pixels, sop_uid=generate_uid())
    with serve_in_thread(app) as url:
        client = DICOMwebClient(f"{url}/dicomweb")
        client.store_instances([ds])  # transcoded to HTJ2K by the (working) pool
        frame = (
            f"{url}/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}/frames/1"
        )
        assert requests.get(frame, headers={"Accept": DECODED}).status_code == 200

        app.state.runtime.pool.close()  # as broken as a pool gets: it takes no task

        answer = requests.get(frame, headers={"Accept": DECODED})
        assert answer.status_code == 503
        assert answer.json() == {
            "success": False,
            "error": "The image worker pool is not running; retry later",
            "type": "WorkerPoolUnavailable",
        }
        [stored] = client.retrieve_instance_frames(
            ds.StudyInstanceUID,
            ds.SeriesInstanceUID,
            ds.SOPInstanceUID,
            frame_numbers=[1],
            media_types=(("application/octet-stream", "*"),),
        )
        assert np.array_equal(imagecodecs.htj2k_decode(stored), pixels)


def test_the_workers_are_started_and_warm_before_the_first_request(
    settings: Settings, clean_orthanc: OrthancProcess
) -> None:
    """The lifespan warms every worker: the first DICOMweb request pays no spawn or import."""
    app = create_app(
        settings.model_copy(update={"workers": 2, "resume_conversions_on_start": False})
    )
    with serve_in_thread(app):
        pool = app.state.runtime.pool._pool
        # Queued behind the warm-up tasks (first in, first out): each runs on a warm worker.
        checks = [pool.schedule(loaded, args=(WORKER_MODULES[-1],)) for _ in range(2)]
        assert [c.result(timeout=120) for c in checks] == [True, True]
