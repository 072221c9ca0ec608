"""``dicomgate demo`` as a newcomer runs it: the real command against a real server and Orthanc."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx
import imagecodecs
import pytest

from dicomgate.app import create_app
from dicomgate.codec.capabilities import HTJ2K_LOSSLESS
from dicomgate.demo import DEMO_IMAGES
from dicomgate.settings import Settings
from tests.live_server import serve_in_thread
from tests.orthanc_process import OrthancProcess, free_port


def demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dicomgate.cli", "demo", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def server(settings: Settings, clean_orthanc: OrthancProcess) -> Iterator[str]:
    with serve_in_thread(create_app(settings)) as url:
        yield url


def test_demo_stores_real_images_through_the_upload_route_and_says_what_to_open(
    server: str, clean_orthanc: OrthancProcess
) -> None:
    put = httpx.put(
        f"{server}/api/ris/patients/DEMO-1/",
        json={"family_name": "Demo", "given_name": "Dana", "birth_date": "1980-02-29"},
    )
    assert put.status_code in (200, 201), put.text
    done = demo("--url", server, "--patient-id", "DEMO-1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Stored 4 images from pydicom's test files for patient DEMO-1:"
    assert "CT_small.dcm: stored; Uploaded and converted successfully" in lines[1]

    # What was stored: one patient, stamped from the cache, the images as the route made them.
    patients = httpx.get(f"{server}/api/orthanc/patients/", params={"patient_id": "DEMO-1"}).json()
    assert [(p["patientId"], p["patientName"]) for p in patients] == [("DEMO-1", "Demo^Dana")]
    orthanc_id = patients[0]["orthancId"]
    assert patients[0]["studiesCount"] == len(DEMO_IMAGES)
    syntaxes = {}
    for instance_id in httpx.get(f"{clean_orthanc.url}/instances").json():
        header = httpx.get(f"{clean_orthanc.url}/instances/{instance_id}/header?simplify").json()
        tags = httpx.get(f"{clean_orthanc.url}/instances/{instance_id}/simplified-tags").json()
        syntaxes[tags["Modality"]] = header["TransferSyntaxUID"]
    assert syntaxes == {
        "CT": HTJ2K_LOSSLESS,
        "MR": HTJ2K_LOSSLESS,
        "US": HTJ2K_LOSSLESS,
        "NM": "1.2.840.10008.1.2.4.51",  # lossy JPEG: kept as it was
    }

    # Every link it prints answers, the preview with a PNG.
    links = [line.split()[0] for line in lines[lines.index("Open next:") + 1 :]]
    assert links[0] == f"{server}/api/orthanc/patients/?patient_id=DEMO-1"
    assert links[1] == f"{server}/api/orthanc/studies/?patient_id={orthanc_id}"
    for link in links:
        assert httpx.get(link).status_code == 200, link
    preview = httpx.get(links[3])
    assert preview.headers["content-type"] == "image/png"
    assert imagecodecs.png_decode(preview.content).shape == (128, 128)  # CT_small

    # Run again: the same files are already there, nothing doubles.
    again = demo("--url", server, "--patient-id", "DEMO-1")
    assert again.returncode == 0, again.stderr
    assert len(httpx.get(f"{clean_orthanc.url}/instances").json()) == len(DEMO_IMAGES)


def test_demo_for_an_unknown_patient_stores_nothing_and_says_how(
    server: str, clean_orthanc: OrthancProcess
) -> None:
    done = demo("--url", server, "--patient-id", "NOBODY-9")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "dicomgate demo: CT_small.dcm: Unknown patient_id 'NOBODY-9': not in the patient cache; "
        "nothing was stored. Create the patient first (PUT /api/ris/patients/{patient_id}/, as "
        "in the README's Quick start), or leave --patient-id out"
    )
    assert httpx.get(f"{clean_orthanc.url}/instances").json() == []


def test_demo_without_a_server_says_how_to_start_one() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = demo("--url", url)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"dicomgate demo: dicomgate is not answering at {url}: start it with scripts/run (or "
        "give its address with --url)"
    )
