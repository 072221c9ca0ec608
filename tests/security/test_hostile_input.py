"""Hostile uploads: bombs, executables in the preamble, deep nesting, mutated bytes and
mutated codestream headers of every compressed transfer syntax.

Each must end in the expected 4xx with nothing stored, and the service must keep answering.
"""

from __future__ import annotations

import contextlib
import io
import uuid

import httpx
import pydicom
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dicomgate.dicom.codestream import check_codestreams
from dicomgate.dicom.uids import derived_uid
from tests.builders import make_dataset, to_bytes
from tests.orthanc_process import OrthancProcess
from tests.security.codestreams import SEEDS, compressed, first_frame, resize_header, with_frames

UPLOAD = "/api/ris/upload/dicom/"


async def upload(client: httpx.AsyncClient, data: bytes, name: str = "x.dcm") -> httpx.Response:
    return await client.post(UPLOAD, files={"file": (name, data, "application/dicom")})


async def instance_count(orthanc: OrthancProcess) -> int:
    async with httpx.AsyncClient() as http:
        return int((await http.get(f"{orthanc.url}/statistics")).json()["CountInstances"])


async def stored_file(orthanc: OrthancProcess, instance_id: str) -> bytes:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"{orthanc.url}/instances/{instance_id}/file")).content


def with_preamble(data: bytes, preamble: bytes) -> bytes:
    return preamble.ljust(128, b"\0")[:128] + data[128:]


def nested(*, depth: int) -> Dataset:
    """A small image whose Content Sequence nests ``depth`` levels deep."""
    ds = make_dataset()
    inner = Dataset()
    inner.CodeValue = "X"
    for _ in range(depth):
        outer = Dataset()
        outer.ContentSequence = Sequence([inner])
        inner = outer
    ds.ContentSequence = Sequence([inner])
    return ds


class TestPreamble:
    @pytest.mark.parametrize(
        "preamble",
        [b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"PE\0\0", b"\x7fELF\x02\x01\x01"],
        ids=["PE", "ELF"],
    )
    async def test_executable_preamble_is_zeroed_in_what_orthanc_stores(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess, preamble: bytes
    ) -> None:
        data = with_preamble(to_bytes(make_dataset()), preamble)
        r = await upload(client, data)
        assert r.status_code == 201, r.text
        iid = r.json()["orthanc_response"]["ID"]
        stored = await stored_file(clean_orthanc, iid)
        assert stored[:128] == b"\0" * 128
        assert stored[128:132] == b"DICM"


class TestBombs:
    async def test_pixel_bomb_header_is_refused_and_nothing_stored(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess
    ) -> None:
        ds = make_dataset(rows=8, columns=8)
        ds.Rows, ds.Columns, ds.NumberOfFrames = 65535, 65535, 1000  # claims ~8 TB, has 128 B
        r = await upload(client, to_bytes(ds))
        assert r.status_code in (400, 413), r.text
        assert r.json()["success"] is False
        assert await instance_count(clean_orthanc) == 0
        assert (await client.get("/api/ris/health/")).status_code == 200

    async def test_deeply_nested_sequences_are_refused(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess
    ) -> None:
        r = await upload(client, to_bytes(nested(depth=200)))
        assert r.status_code == 400, r.text
        assert "nests sequences deeper than 32 levels" in r.json()["error"]
        assert await instance_count(clean_orthanc) == 0

    async def test_ordinary_nesting_is_fine(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess
    ) -> None:
        r = await upload(client, to_bytes(nested(depth=10)))
        assert r.status_code == 201, r.text


SEED = to_bytes(make_dataset(rows=16, columns=16, bits_stored=12))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """The seed file with random byte flips, a cut, or inserted garbage."""
    data = bytearray(SEED)
    for _ in range(draw(st.integers(0, 12))):
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] = draw(st.integers(0, 255))
    action = draw(st.sampled_from(["none", "truncate", "insert"]))
    if action == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif action == "insert":
        pos = draw(st.integers(0, len(data)))
        data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
    return bytes(data)


class TestFuzzUpload:
    @settings(
        max_examples=200,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(data=mutated())
    async def test_mutated_dicom_never_500s(
        self, client: httpx.AsyncClient, orthanc: OrthancProcess, data: bytes
    ) -> None:
        r = await upload(client, data)
        # 409: a mutation that keeps a stored SOP Instance UID with other content (the
        # identity rules refuse it, nothing is stored).
        assert r.status_code in (201, 400, 409, 413, 415, 422), (r.status_code, r.text)
        if r.status_code == 409:
            assert r.json()["type"] in {"ContentConflict", "PatientConflict"}, r.text
        body = r.json()
        if r.status_code == 201:
            # Whatever was stored must itself be readable DICOM with a zeroed preamble.
            iid = body["orthanc_response"]["ID"]
            stored = await stored_file(orthanc, iid)
            assert stored[:128] == b"\0" * 128
            pydicom.dcmread(io.BytesIO(stored))
        else:
            assert body["success"] is False and body["error"]


CODESTREAM_SEEDS = {name: compressed(name) for name in sorted(SEEDS)}


FUZZ_UIDS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:dicomgate:tests:codestream-fuzz")


@st.composite
def mutated_codestream(draw: st.DrawFn) -> tuple[str, bytes]:
    """A seed of any compressed syntax whose first frame's header bytes are changed: flips in
    the first 64 bytes (SIZ, SOFn, RLE header), a cut, or a size field set to a big value."""
    name = draw(st.sampled_from(sorted(CODESTREAM_SEEDS)))
    ds = CODESTREAM_SEEDS[name]
    frame = bytearray(first_frame(ds))
    head = min(64, len(frame))
    for _ in range(draw(st.integers(0, 6))):
        frame[draw(st.integers(0, head - 1))] = draw(st.integers(0, 255))
    action = draw(st.sampled_from(["none", "truncate", "resize"]))
    if action == "truncate":
        frame = frame[: draw(st.integers(2, len(frame)))]
    elif action == "resize":
        size = draw(st.sampled_from([1, 15, 17, 4096, 65535]))
        # (the flips above may have broken the markers resize_header looks for)
        with contextlib.suppress(IndexError, ValueError):
            frame = bytearray(resize_header(bytes(frame), SEEDS[name].syntax, size, size))
    out = with_frames(ds, SEEDS[name].syntax, [bytes(frame)])
    # Its own SOP Instance UID per content (the identity rules would refuse other pixels under
    # a stored UID with a 409; this test is about the codestream headers).
    out.SOPInstanceUID = derived_uid(FUZZ_UIDS, name, bytes(frame).hex())
    return name, to_bytes(out)


class TestFuzzCodestreamHeaders:
    @settings(
        max_examples=150,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(case=mutated_codestream())
    async def test_mutated_headers_never_500_and_nothing_inconsistent_is_stored(
        self, client: httpx.AsyncClient, orthanc: OrthancProcess, case: tuple[str, bytes]
    ) -> None:
        name, data = case
        r = await upload(client, data)
        event(f"{r.status_code} {r.json().get('type', 'stored')}")
        assert r.status_code in (201, 400, 413, 415, 422), (name, r.status_code, r.text)
        body = r.json()
        if r.status_code != 201:
            assert body["success"] is False and body["error"]
            return
        # Whatever was stored holds no codestream header that disagrees with its dataset
        # (check_codestreams raises InvalidCodestream on one).
        stored = pydicom.dcmread(
            io.BytesIO(await stored_file(orthanc, body["orthanc_response"]["ID"]))
        )
        check_codestreams(stored, str(stored.file_meta.TransferSyntaxUID))
