"""``dicomgate demo``: store a few real images in a running dicomgate, then say what to open.

The images are pydicom's own test files (installed with pydicom), sent one by one to the
service's ordinary upload route, ``POST /api/ris/upload/dicom/``: the same checks, patient
stamping, transcoding and storage as any upload, with its authentication and audit trail.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from dicomgate.settings import Settings

DEFAULT_URL = "http://127.0.0.1:8000"
UPLOAD_ROUTE = "/api/ris/upload/dicom/"


@dataclass(frozen=True)
class DemoImage:
    """One test file and why it is in the demo."""

    name: str
    shows: str


DEMO_IMAGES = (
    DemoImage("CT_small.dcm", "CT, 16-bit signed, uncompressed: converted to HTJ2K"),
    DemoImage("MR_small.dcm", "MR, 16-bit, uncompressed: converted to HTJ2K"),
    DemoImage("examples_rgb_color.dcm", "ultrasound, RGB colour: converted to HTJ2K"),
    DemoImage("JPGExtended.dcm", "NM, 12-bit lossy JPEG: stored as it is (already lossy)"),
)


class DemoFailed(Exception):
    """The demo cannot go on; the message says why and what to do."""


def demo_file(name: str) -> Path:
    """A test file shipped inside pydicom's package (never downloaded)."""
    from pydicom.data import get_testdata_file

    found = get_testdata_file(name, download=False)
    if not isinstance(found, str) or not Path(found).is_file():
        raise DemoFailed(f"pydicom's test file {name} is not installed with pydicom here")
    return Path(found)


def _explain(response: httpx.Response, url: str) -> str:
    """Why an upload was refused, for a person."""
    try:
        body = response.json()
        error, kind = str(body.get("error", response.text)), str(body.get("type", ""))
    except ValueError:
        error, kind = response.text[:200], ""
    if kind == "PatientNotFound":
        return (
            f"{error}. Create the patient first (PUT /api/ris/patients/{{patient_id}}/, as in "
            "the README's Quick start), or leave --patient-id out"
        )
    if response.status_code in (401, 403):
        return (
            f"{url} refused the demo ({response.status_code}: {error}). Authentication is on: "
            "create a key with `dicomgate apikey create --name demo --scopes "
            "dicom:write,dicom:read` and pass it with --api-key"
        )
    return f"{response.status_code}: {error}"


def upload(client: httpx.Client, image: DemoImage, *, patient_id: str | None) -> dict[str, Any]:
    """Send one file to the upload route; its JSON answer, or DemoFailed."""
    path = demo_file(image.name)
    fields = {"patient_id": patient_id} if patient_id else {}
    with path.open("rb") as fh:
        response = client.post(
            UPLOAD_ROUTE,
            data=fields,
            files={"file": (image.name, fh, "application/dicom")},
        )
    if not response.is_success:
        raise DemoFailed(f"{image.name}: {_explain(response, str(client.base_url))}")
    answer: dict[str, Any] = response.json()
    return answer


def describe(image: DemoImage, answer: dict[str, Any]) -> str:
    """One line per stored file: what it is, what happened, sizes."""
    stored = answer.get("orthanc_response", {})
    status = "already stored" if stored.get("Status") == "AlreadyStored" else "stored"
    return (
        f"  {image.name}: {status}; {answer.get('message', '')} "
        f"({answer.get('source_transfer_syntax')} → {answer.get('stored_transfer_syntax')}, "
        f"{answer.get('original_size')} → {answer.get('stored_size')} bytes) — {image.shows}"
    )


def run_demo(url: str, *, patient_id: str | None, api_key: str | None) -> str:
    """Upload the demo images; the report and the links to open next."""
    headers = {"X-API-Key": api_key} if api_key else {}
    lines: list[str] = []
    answers: list[tuple[DemoImage, dict[str, Any]]] = []
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
            for image in DEMO_IMAGES:
                answer = upload(client, image, patient_id=patient_id)
                answers.append((image, answer))
    except httpx.TransportError:
        raise DemoFailed(
            f"dicomgate is not answering at {url}: start it with scripts/run (or give its "
            "address with --url)"
        ) from None
    patients = sorted({a["orthanc_response"]["ParentPatient"] for _, a in answers})
    who = f"patient {patient_id}" if patient_id else f"{len(patients)} patients"
    lines.append(f"Stored {len(answers)} images from pydicom's test files for {who}:")
    lines.extend(describe(image, answer) for image, answer in answers)
    first = answers[0][1]["orthanc_response"]
    lines.append("Open next:")
    if patient_id:
        lines.append(
            f"  {url}/api/orthanc/patients/?patient_id={quote(patient_id, safe='')}"
            "   the patient (its orthancId is what the other listings take)"
        )
    else:
        lines.append(f"  {url}/api/orthanc/patients/   the patients")
    lines.extend(
        [
            f"  {url}/api/orthanc/studies/?patient_id={first['ParentPatient']}   "
            "the studies of the first one",
            f"  {url}/api/orthanc/series/?study_id={first['ParentStudy']}   its series",
            f"  {url}/api/orthanc/instances/{first['ID']}/preview/   a PNG preview "
            f"({answers[0][0].name}, decoded from HTJ2K by dicomgate)",
            f"  {url}/docs   every route, to try in the browser",
        ]
    )
    return "\n".join(lines)


def demo_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run the demo; 0 when every image was stored, 1 otherwise."""
    url = str(args.url).rstrip("/")
    try:
        print(run_demo(url, patient_id=args.patient_id, api_key=args.api_key))
    except DemoFailed as exc:
        print(f"dicomgate demo: {exc}", file=sys.stderr)
        return 1
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``dicomgate demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="store a few sample images (pydicom's test files) in a running dicomgate",
        description="Uploads "
        + ", ".join(image.name for image in DEMO_IMAGES)
        + " through the ordinary upload route of the dicomgate at --url, then prints what to "
        "open next.",
    )
    parser.add_argument("--url", default=DEFAULT_URL, help=f"dicomgate's address ({DEFAULT_URL})")
    parser.add_argument(
        "--patient-id",
        default=None,
        help="file the images under this patient of the patient cache (create it first); "
        "without it they keep the patients they were made with",
    )
    parser.add_argument("--api-key", default=None, help="an API key with dicom:write (auth on)")
    parser.set_defaults(func=demo_command)
