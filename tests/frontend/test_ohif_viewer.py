"""The real OHIF viewer shows what dicomgate stores: OHIF 3 in headless Chromium, WebGL in software.

One dicomgate (``dicomgate serve``: real uvicorn, authentication ON, a JWT secret, CORS for the
viewer's origin) in front of its own Orthanc; OHIF's built viewer (``@ohif/app`` dist, pinned)
served on another loopback origin with one DICOMweb data source, dicomgate's ``/dicomweb``. The
viewer gets a read-only bearer token the way OHIF 3.13 takes one (the viewer URL's ``token``).

Five studies, each put there the way a hospital would:

- ``ct``: a CT series uploaded through dicomgate (stored as HTJ2K);
- ``us``: a colour ultrasound (RGB source, stored as HTJ2K with the colour transform: YBR_RCT);
- ``multiframe``: a 10-frame enhanced MR uploaded through dicomgate;
- ``converted``: a CT stored uncompressed in Orthanc, then converted in place by
  ``dicomgate convert-to-htj2k``;
- ``ybr_full``: YBR_FULL colour, which dicomgate keeps as uploaded because OHIF's HTJ2K decoder
  would scramble it (tests/codec/test_viewer_decoder.py).

One Chromium opens each in OHIF's viewer route. From the viewport canvas's own pixels: something
is drawn, it is not uniform, and it is the image (correlation with the source pixels through a
linear window, colour channel by channel). Screenshots are kept (paths printed). The network log
shows every DICOMweb request carried the bearer token, went to dicomgate (nothing leaves the
machine), passed its CORS preflight, and that frames arrived as the stored HTJ2K for the viewer
to decode itself.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import numpy as np
import pydicom
import pydicom.data
import pytest
from pydicom.pixels import apply_modality_lut
from pydicom.uid import ExplicitVRLittleEndian

from dicomgate.codec.profiles import HTJ2K_SYNTAXES
from tests.builders import make_dataset, to_bytes
from tests.dicomgate_process import start_dicomgate, stop_dicomgate
from tests.frontend.ohif_app import OHIF_DIST, app_config, serve_ohif
from tests.orthanc_process import OrthancProcess

pytestmark = pytest.mark.slow

DRIVER = Path(__file__).resolve().parent / "ohif_view.mjs"
JWT_SECRET = "ohif-viewer-test-secret-0123456789abcdef-0123456789abcdef"
JWT_AUDIENCE = "dicomgate"  # required whenever JWTs are on (README: Security)
UPLOAD = "/api/ris/upload/dicom/"
CT_SLICES = 4
# Cornerstone3D takes a bare image/jphc for this pre-standard HTJ2K UID, and decodes it as HTJ2K.
HTJ2K_AS_OHIF_READS = {*HTJ2K_SYNTAXES, "3.2.840.10008.1.2.4.96"}


@dataclass(frozen=True)
class Study:
    """What one case stored: its UID, and the frames a viewer may show first (modality values)."""

    name: str
    study_instance_uid: str
    frames: list[np.ndarray]  # rows × columns (greyscale, modality LUT applied) or × 3 (RGB)
    stored_as: frozenset[str] = HTJ2K_SYNTAXES  # the transfer syntax its frames are served in


@dataclass(frozen=True)
class Run:
    """One viewer session over every case: the two origins, and what each case showed."""

    viewer: str
    dicomgate: str
    cases: dict[str, Viewed]


@dataclass(frozen=True)
class Viewed:
    """What OHIF showed for one study, and what the page asked of the network to show it."""

    study: Study
    canvas: np.ndarray | None  # height × width × 3, the viewport canvas
    report: dict[str, Any]
    screenshot: Path


def _token(scope: str) -> str:
    now = int(time.time())
    claims = {
        "sub": "ohif-viewer-test",
        "aud": JWT_AUDIENCE,
        "scope": scope,
        "iat": now,
        "exp": now + 3600,
    }
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


def _frames(data: bytes) -> list[np.ndarray]:
    ds = pydicom.dcmread(BytesIO(data))
    pixels = ds.pixel_array
    if int(ds.get("NumberOfFrames") or 1) == 1:
        pixels = pixels[np.newaxis]
    if int(ds.SamplesPerPixel) == 3:
        return [frame.astype(np.float64) for frame in pixels]
    return [np.asarray(apply_modality_lut(frame, ds), dtype=np.float64) for frame in pixels]


def _ct_series() -> list[bytes]:
    """A small CT series: an ellipse of soft tissue with a bone ring and a lesion that moves."""
    study, series = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    y, x = np.mgrid[0:192, 0:160]
    files = []
    for i in range(CT_SLICES):
        body = ((x - 80) / 70) ** 2 + ((y - 96) / 85) ** 2 <= 1
        ring = body & (((x - 80) / 60) ** 2 + ((y - 96) / 75) ** 2 > 1)
        lesion = (x - 60 - 8 * i) ** 2 + (y - 80) ** 2 <= 15**2
        hu = np.where(body, 40, -1000) + np.where(ring, 900, 0) + np.where(lesion, 120, 0)
        hu = hu + (np.arange(160)[None, :] % 7) * 3  # texture, so the picture is not flat
        ds = make_dataset(
            rows=192,
            columns=160,
            bits_allocated=16,
            bits_stored=16,
            signed=True,
            modality="CT",
            study_uid=study,
            series_uid=series,
            instance_number=i + 1,
            pixels=(hu + 1024).astype(np.int16),
            RescaleIntercept=-1024,
            RescaleSlope=1,
            PixelSpacing=[0.8, 0.8],
            SliceThickness=2.5,
            ImagePositionPatient=[-64, -76.8, -2.5 * i],
            ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
            PatientPosition="HFS",
        )
        files.append(to_bytes(ds))
    return files


def _upload(client: httpx.Client, data: bytes, name: str) -> dict[str, Any]:
    response = client.post(UPLOAD, files=[("file", (name, data, "application/dicom"))])
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _stored_syntaxes(orthanc: OrthancProcess, study_uid: str) -> set[str]:
    with httpx.Client(base_url=orthanc.url, timeout=60) as client:
        found = client.post("/tools/lookup", content=study_uid).json()
        study_id = found[0]["ID"]
        instances = client.get(f"/studies/{study_id}/instances").json()
        headers = [client.get(f"/instances/{i['ID']}/header?short").json() for i in instances]
        return {str(header["0002,0010"]).strip() for header in headers}


@pytest.fixture(scope="module")
def viewer_orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancProcess]:
    """An Orthanc of the viewer tests' own (the studies here are the only ones in it)."""
    orthanc = OrthancProcess(tmp_path_factory.mktemp("ohif-orthanc"))
    orthanc.start()
    yield orthanc
    orthanc.stop()


@pytest.fixture(scope="module")
def viewed(
    viewer_orthanc: OrthancProcess,
    node: str,
    node_bin: Path,
    chromium: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Run]:
    """Store the four studies, open each in OHIF once (one browser), keep what it showed."""
    if not (OHIF_DIST / "index.html").is_file():
        pytest.fail(f"the OHIF viewer is not installed in {OHIF_DIST}: run scripts/setup-tests")
    work = tmp_path_factory.mktemp("ohif")
    shots = tmp_path_factory.mktemp("ohif-screenshots")
    log = (work / "dicomgate.log").open("wb")
    with serve_ohif() as ohif:
        proc, dicomgate = start_dicomgate(
            viewer_orthanc.url,
            work,
            env={
                "DICOMGATE_AUTH_ENABLED": "true",
                "DICOMGATE_JWT_SECRET": JWT_SECRET,
                "DICOMGATE_JWT_AUDIENCE": JWT_AUDIENCE,
                "DICOMGATE_CORS_ORIGINS": json.dumps([ohif.url]),
                "DICOMGATE_JOURNAL_DIR": str(work / "journal"),
                "DICOMGATE_LOG_LEVEL": "INFO",
            },
            stderr=log,
        )
        try:
            ohif.config = app_config(f"{dicomgate}/dicomweb")
            studies = _store_studies(viewer_orthanc, dicomgate, work)
            cases = _open_in_ohif(node, chromium, ohif.url, studies, work, shots)
            yield Run(viewer=ohif.url, dicomgate=dicomgate, cases=cases)
        finally:
            stop_dicomgate(proc)
            log.close()
            print(f"dicomgate log: {work / 'dicomgate.log'}; missing in dist: {ohif.missing}")


def _store_studies(orthanc: OrthancProcess, dicomgate: str, work: Path) -> list[Study]:
    import data_store

    corpus = Path(data_store.__file__).parent / "data"
    writer = {"Authorization": f"Bearer {_token('dicom:write')}"}
    studies = []
    with httpx.Client(base_url=dicomgate, headers=writer, timeout=120) as client:
        ct = _ct_series()
        for i, data in enumerate(ct):
            answer = _upload(client, data, f"ct-{i}.dcm")
            assert answer["stored_transfer_syntax"] in HTJ2K_SYNTAXES, answer
        uid = str(pydicom.dcmread(BytesIO(ct[0])).StudyInstanceUID)
        studies.append(Study("ct", uid, [f for data in ct for f in _frames(data)]))

        for name, source in (("us", "US1_UNCR.dcm"), ("multiframe", "emri_small.dcm")):
            data = (corpus / source).read_bytes()
            answer = _upload(client, data, source)
            assert answer["stored_transfer_syntax"] in HTJ2K_SYNTAXES, answer
            uid = str(pydicom.dcmread(BytesIO(data)).StudyInstanceUID)
            studies.append(Study(name, uid, _frames(data)))

        # YBR_FULL colour stays as uploaded (OHIF's HTJ2K decoder would scramble it): OHIF
        # converts it to RGB itself, as pydicom's pixel_array does.
        data = (corpus / "SC_ybr_full_uncompressed.dcm").read_bytes()
        answer = _upload(client, data, "ybr_full.dcm")
        assert answer["pass_through_reason"] == "ybr_full", answer
        uid = str(pydicom.dcmread(BytesIO(data)).StudyInstanceUID)
        studies.append(Study("ybr_full", uid, _frames(data), frozenset({ExplicitVRLittleEndian})))

    # A study from before dicomgate: stored as it came (uncompressed), then migrated in place.
    legacy = Path(pydicom.data.get_testdata_file("CT_small.dcm")).read_bytes()
    assert orthanc.store(legacy)["Status"] == "Success"
    uid = str(pydicom.dcmread(BytesIO(legacy)).StudyInstanceUID)
    env = {
        **os.environ,
        "DICOMGATE_ORTHANC_URL": orthanc.url,
        "DICOMGATE_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'dicomgate.db'}",
        "DICOMGATE_JOURNAL_DIR": str(work / "journal"),
        "DICOMGATE_WORKERS": "1",
    }
    run = subprocess.run(
        [sys.executable, "-m", "dicomgate.cli", "convert-to-htj2k", "--study", uid],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert _stored_syntaxes(orthanc, uid) <= set(HTJ2K_SYNTAXES)
    studies.append(Study("converted", uid, _frames(legacy)))
    return studies


def _open_in_ohif(
    node: str, chromium: Path, viewer: str, studies: list[Study], work: Path, shots: Path
) -> dict[str, Viewed]:
    reader = _token("dicom:read")  # the viewer only reads
    cases = [
        {
            "name": s.name,
            "studyInstanceUID": s.study_instance_uid,
            "token": reader,
            "screenshot": str(shots / f"ohif-{s.name}.png"),
        }
        for s in studies
    ]
    job = work / "ohif-job.json"
    job.write_text(
        json.dumps({"viewer": viewer, "userDataDir": str(work / "chromium"), "cases": cases})
    )
    proc = subprocess.run(
        [node, str(DRIVER), str(job)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=DRIVER.parent,
        # HOME: whatever the Chromium launcher writes under ~ stays in the test's folder.
        env={**os.environ, "HOME": str(work), "CHROMIUM": str(chromium)},
    )
    (work / "ohif-driver-output.json").write_text(proc.stdout, encoding="utf-8")
    assert proc.stdout, proc.stderr[-4000:]
    reports = json.loads(proc.stdout)
    viewed = {}
    for study, report in zip(studies, reports, strict=True):
        canvas = None
        if report["canvas"] is not None:
            c = report["canvas"]
            rgba = np.frombuffer(base64.b64decode(c["rgba"]), np.uint8)
            canvas = rgba.reshape(c["height"], c["width"], 4)[..., :3]
        shot = shots / f"ohif-{study.name}.png"
        print(f"OHIF screenshot of {study.name}: {shot}")
        viewed[study.name] = Viewed(study, canvas, report, shot)
    return viewed


# --- What the viewport shows ---------------------------------------------------------------------
def _image_area(canvas: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """The canvas sampled at the centre of each source pixel (OHIF fits the image, centred)."""
    height, width = canvas.shape[:2]
    scale = min(width / cols, height / rows)
    top, left = (height - rows * scale) / 2, (width - cols * scale) / 2
    ys = np.clip((top + (np.arange(rows) + 0.5) * scale).astype(int), 0, height - 1)
    xs = np.clip((left + (np.arange(cols) + 0.5) * scale).astype(int), 0, width - 1)
    return canvas[ys][:, xs].astype(np.float64)


def _likeness(shown: np.ndarray, frame: np.ndarray) -> float:
    """Pearson correlation of what is shown with a source frame (per channel, the worst)."""
    if frame.ndim == 2:
        return float(np.corrcoef(shown.mean(axis=-1).ravel(), frame.ravel())[0, 1])
    return min(
        float(np.corrcoef(shown[..., c].ravel(), frame[..., c].ravel())[0, 1]) for c in range(3)
    )


def _assert_shows_the_image(viewed: Viewed) -> None:
    report = viewed.report
    failed = [
        (r["method"], r["url"], r["status"], r["failure"])
        for r in report["requests"]
        if r["failure"] or (r["status"] or 0) >= 400
    ]
    assert report["error"] is None and report["settled"], (
        f"{viewed.study.name}: {report['error']}; failed requests {failed}; "
        f"console {report['console'][-20:]}; screenshot {viewed.screenshot}"
    )
    assert viewed.canvas is not None
    frame0 = viewed.study.frames[0]
    shown = _image_area(viewed.canvas, frame0.shape[0], frame0.shape[1])
    assert shown.std() > 10, f"a uniform viewport: {viewed.screenshot}"
    assert len(np.unique(shown.reshape(-1, 3), axis=0)) > 32
    best = max(_likeness(shown, frame) for frame in viewed.study.frames)
    assert best > 0.97, f"{viewed.study.name}: shown image unlike the source ({best:.3f})"


@pytest.mark.parametrize("name", ["ct", "us", "multiframe", "converted", "ybr_full"])
def test_ohif_shows_the_stored_image(viewed: Run, name: str) -> None:
    _assert_shows_the_image(viewed.cases[name])


def _syntax_ohif_reads(request: dict[str, Any]) -> str:
    """The transfer syntax Cornerstone3D decodes a frame answer as.

    A multipart answer: from the first part's ``Content-Type:`` line (spelled exactly so,
    wadors/extractMultipart.ts), else from the answer's Content-Type; then its
    ``transfer-syntax`` parameter, ``image/jphc`` meaning HTJ2K, or Implicit VR Little Endian
    (getTransferSyntaxForContentType in the loader).
    """
    content_type = request["contentType"] or ""
    if "multipart" in content_type:
        head = (request["bodyHead"] or "").split("\r\n\r\n")[0].split("\r\n")
        part = [line[13:].strip() for line in head if line.startswith("Content-Type:")]
        content_type = part[0] if part else ""
    params = dict(
        (key.strip(), value.strip().strip('"'))
        for key, _, value in (p.partition("=") for p in content_type.split(";")[1:])
    )
    if "transfer-syntax" in params:
        return params["transfer-syntax"]
    return (
        "3.2.840.10008.1.2.4.96" if content_type.startswith("image/jphc") else "1.2.840.10008.1.2"
    )


def test_frames_reach_the_viewer_as_stored(viewed: Run) -> None:
    for name, one in viewed.cases.items():
        frames = [r for r in one.report["requests"] if "/frames/" in urlsplit(r["url"]).path]
        assert frames, f"{name}: OHIF asked for no frame"
        stored_as = one.study.stored_as
        if stored_as == HTJ2K_SYNTAXES:
            stored_as = HTJ2K_AS_OHIF_READS
        for request in frames:
            assert request["status"] in (200, 206), request
            # OHIF decodes HTJ2K itself: the stored codestream, labelled with its syntax.
            assert _syntax_ohif_reads(request) in stored_as, request


def test_every_request_is_local_and_every_dicomweb_one_authorized_across_origins(
    viewed: Run,
) -> None:
    origins = {urlsplit(viewed.viewer).netloc, urlsplit(viewed.dicomgate).netloc}
    for name, one in viewed.cases.items():
        report = one.report
        # The viewer's origin and dicomgate's, both loopback; nothing from anywhere else.
        assert {urlsplit(r["url"]).netloc for r in report["requests"]} <= origins
        api = [r for r in report["requests"] if r["url"].startswith(f"{viewed.dicomgate}/")]
        assert api, f"{name}: no request to dicomgate"
        assert [r["url"] for r in api if not r["authorization"]] == []
        assert [(r["url"], r["status"]) for r in api if r["status"] not in (200, 206)] == []
        # Cross-origin with Authorization: Chromium asked first, and dicomgate said yes.
        assert report["preflights"], f"{name}: no CORS preflight"
        for preflight in report["preflights"]:
            assert preflight["url"].startswith(f"{viewed.dicomgate}/dicomweb/"), preflight
            assert "authorization" in (preflight["requestHeaders"] or "").lower(), preflight
            assert preflight["status"] == 200, preflight
            assert preflight["allowOrigin"] == viewed.viewer, preflight
