"""Previews: the pure renderer (pixel values) and the route against a real Orthanc."""

from __future__ import annotations

from pathlib import Path

import httpx
import imagecodecs
import numpy as np
import pytest
from pydicom.dataset import Dataset

from dicomgate.codec.preview import render_preview
from dicomgate.errors import FrameNotFound, ImageTooLarge, UnprocessableInput
from tests.browse.helpers import Store
from tests.browse.test_listings import UNKNOWN_ID, assert_error
from tests.builders import make_dataset, to_bytes, to_htj2k
from tests.orthanc_process import OrthancProcess

BIG = 10**9


def png(data: bytes, **kwargs: int) -> np.ndarray:
    """Render and decode the PNG again."""
    out = render_preview(data, max_pixels=kwargs.pop("max_pixels", BIG), **kwargs)
    assert out[:8] == b"\x89PNG\r\n\x1a\n"
    decoded: np.ndarray = imagecodecs.png_decode(out)
    return decoded


def min_max(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64)
    return np.rint((values - values.min()) * 255.0 / (values.max() - values.min())).astype(np.uint8)


class TestRenderPreview:
    def test_min_max_when_no_window(self) -> None:
        ds = make_dataset(rows=4, columns=6)
        image = png(to_bytes(ds))
        assert image.shape == (4, 6)
        assert image.dtype == np.uint8
        assert np.array_equal(image, min_max(ds.pixel_array))

    def test_rescale_then_first_window(self) -> None:
        # Stored 50/100/150/1000 → HU 0/100/200/1900 (slope 2, intercept −100); window 100.5/201
        # (PS3.3 C.11.2.1.2.1) maps 0 → 0, 100 → 127.5 → 128, 200 → 255, 1900 → 255.
        pixels = np.array([[50, 100, 150, 1000]], dtype=np.uint16)
        ds = make_dataset(
            rows=1,
            columns=4,
            pixels=pixels,
            RescaleSlope=2,
            RescaleIntercept=-100,
            WindowCenter=[100.5, 40],
            WindowWidth=[201, 80],
        )
        assert png(to_bytes(ds)).tolist() == [[0, 128, 255, 255]]

    def test_signed_pixels(self) -> None:
        pixels = np.array([[-1000, 0, 1000]], dtype=np.int16)
        ds = make_dataset(rows=1, columns=3, signed=True, pixels=pixels)
        assert png(to_bytes(ds)).tolist() == [[0, 128, 255]]

    def test_monochrome1_is_inverted(self) -> None:
        ds = make_dataset(rows=4, columns=4, photometric="MONOCHROME1")
        image = png(to_bytes(ds))
        assert np.array_equal(image, 255 - min_max(ds.pixel_array))
        assert image[0, 0] == 255 and image[-1, -1] == 0  # lowest stored value is white

    def test_colour_stays_colour(self) -> None:
        pixels = np.zeros((3, 5, 3), dtype=np.uint8)
        pixels[..., 0], pixels[..., 1], pixels[..., 2] = 200, 100, 30
        pixels[0, 0] = (0, 255, 7)
        ds = make_dataset(
            rows=3, columns=5, samples=3, bits_allocated=8, bits_stored=8, pixels=pixels
        )
        image = png(to_bytes(ds))
        assert image.shape == (3, 5, 3)
        assert np.array_equal(image, pixels)

    def test_frame_selects_the_frame(self) -> None:
        ds = make_dataset(rows=2, columns=2, frames=3)
        frames = ds.pixel_array
        for index in range(3):
            assert np.array_equal(png(to_bytes(ds), frame=index), min_max(frames[index]))

    def test_frame_out_of_range(self) -> None:
        ds = make_dataset(rows=2, columns=2, frames=3)
        with pytest.raises(FrameNotFound, match="Frame 3 does not exist; the instance has 3"):
            render_preview(to_bytes(ds), frame=3, max_pixels=BIG)

    def test_pixel_bomb_refused_before_decoding(self) -> None:
        ds = make_dataset(rows=4, columns=4, frames=2)
        ds.Rows = ds.Columns = 60000  # declared, not present: must be refused, not decoded
        with pytest.raises(ImageTooLarge, match=r"60000×60000×1×2"):
            render_preview(to_bytes(ds), max_pixels=10_000_000)

    def test_no_pixel_data(self) -> None:
        ds = make_dataset()
        del ds.PixelData
        with pytest.raises(UnprocessableInput, match="no pixel data"):
            render_preview(to_bytes(ds), max_pixels=BIG)

    def test_htj2k_multiframe(self) -> None:
        ds = make_dataset(rows=16, columns=12, frames=2)
        image = png(to_bytes(to_htj2k(ds)), frame=1)
        assert np.array_equal(image, min_max(ds.pixel_array[1]))

    def test_jpeg2000_corpus_file_renders_like_its_uncompressed_twin(
        self, corpus_dir: Path
    ) -> None:
        compressed = png((corpus_dir / "MR_small_jp2klossless.dcm").read_bytes())
        native = png((corpus_dir / "MR_small.dcm").read_bytes())
        assert compressed.shape == (64, 64)
        assert np.array_equal(compressed, native)
        assert compressed.min() != compressed.max()


def undecodable_jpeg(corpus_dir: Path) -> bytes:
    """A 12-bit JPEG Extended file whose one fragment is not JPEG at all."""
    import pydicom
    from pydicom.encaps import encapsulate

    ds = pydicom.dcmread(corpus_dir / "JPGExtended.dcm")
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xc1 not a JPEG scan \xff\xd9"])
    return to_bytes(ds)


PLUGIN_WORDS = ("pylibjpeg", "pillow", "gdcm", "plugin", "libjpeg", "imagecodecs", "Traceback")


class TestTwelveBitJpeg:
    """JPEG Extended (…4.51) with 12 bits stored: decoded for previews, failures said plainly."""

    def test_conformant_file_renders_like_pydicoms_decoding(self, corpus_dir: Path) -> None:
        import pydicom

        data = (corpus_dir / "JPGExtended.dcm").read_bytes()
        assert pydicom.dcmread(corpus_dir / "JPGExtended.dcm").BitsStored == 12
        reference = pydicom.dcmread(corpus_dir / "JPGExtended.dcm").pixel_array
        assert np.array_equal(png(data), min_max(reference))

    def test_nema_file_libjpeg_refuses_renders_too(self, corpus_dir: Path) -> None:
        # JPEG-lossy.dcm (NEMA WG04 NM1_JPLY) is JPGExtended.dcm before its scan header was
        # fixed: libjpeg (pylibjpeg) and Pillow both refuse it; libjpeg-turbo reads it. The two
        # decoders' inverse DCTs may round differently: at most 1 apart in the PNG.
        broken = png((corpus_dir / "JPEG-lossy.dcm").read_bytes())
        fixed = png((corpus_dir / "JPGExtended.dcm").read_bytes())
        assert broken.shape == fixed.shape == (1024, 256)
        assert int(np.abs(broken.astype(int) - fixed.astype(int)).max()) <= 1
        assert broken.max() > broken.min()

    def test_undecodable_pixels_say_so_without_library_names(self, corpus_dir: Path) -> None:
        with pytest.raises(UnprocessableInput) as caught:
            render_preview(undecodable_jpeg(corpus_dir), max_pixels=BIG)
        assert caught.value.message == (
            "The pixel data cannot be decoded: JPEG Extended (Process 2 and 4) "
            "(1.2.840.10008.1.2.4.51), 12 bits stored"
        )

    async def test_route_previews_the_nema_file(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess, corpus_dir: Path
    ) -> None:
        iid = clean_orthanc.store((corpus_dir / "JPEG-lossy.dcm").read_bytes())["ID"]
        response = await client.get(f"/api/orthanc/instances/{iid}/preview/")
        assert response.status_code == 200, response.text
        expected = png((corpus_dir / "JPEG-lossy.dcm").read_bytes())
        assert np.array_equal(imagecodecs.png_decode(response.content), expected)

    async def test_route_422_names_no_plugin(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess, corpus_dir: Path
    ) -> None:
        iid = clean_orthanc.store(undecodable_jpeg(corpus_dir))["ID"]
        response = await client.get(f"/api/orthanc/instances/{iid}/preview/")
        assert_error(response, 422, "UnprocessableInput", "The pixel data cannot be decoded")
        error = response.json()["error"]
        assert not [word for word in PLUGIN_WORDS if word.lower() in error.lower()], error


def _stored(store: Store, ds: Dataset) -> str:
    return store(ds)["ID"]


class TestPreviewRoute:
    async def test_unknown_instance_is_404(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess
    ) -> None:
        response = await client.get(f"/api/orthanc/instances/{UNKNOWN_ID}/preview/")
        assert_error(response, 404, "NotFound", f"No instance with Orthanc ID {UNKNOWN_ID}")

    async def test_negative_frame_is_422(self, client: httpx.AsyncClient, store: Store) -> None:
        iid = _stored(store, make_dataset())
        response = await client.get(f"/api/orthanc/instances/{iid}/preview/", params={"frame": -1})
        assert_error(response, 422, "ValidationError", "frame")

    async def test_frame_beyond_last_is_404(self, client: httpx.AsyncClient, store: Store) -> None:
        iid = _stored(store, make_dataset(frames=2))
        response = await client.get(f"/api/orthanc/instances/{iid}/preview/", params={"frame": 2})
        assert_error(response, 404, "FrameNotFound", "Frame 2 does not exist")

    async def test_uncompressed(self, client: httpx.AsyncClient, store: Store) -> None:
        ds = make_dataset(rows=6, columns=10)
        response = await client.get(f"/api/orthanc/instances/{_stored(store, ds)}/preview/")
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
        assert np.array_equal(imagecodecs.png_decode(response.content), min_max(ds.pixel_array))

    async def test_htj2k_which_orthanc_cannot_preview(
        self, client: httpx.AsyncClient, store: Store, clean_orthanc: OrthancProcess
    ) -> None:
        ds = make_dataset(rows=16, columns=12, frames=3)
        iid = _stored(store, to_htj2k(ds))
        # Orthanc 1.10 itself cannot decode it: the reason dicomgate renders previews.
        async with httpx.AsyncClient(base_url=clean_orthanc.url) as direct:
            own = await direct.get(f"/instances/{iid}/frames/1/preview")
        assert own.status_code >= 400
        response = await client.get(f"/api/orthanc/instances/{iid}/preview/", params={"frame": 1})
        assert response.status_code == 200
        assert np.array_equal(imagecodecs.png_decode(response.content), min_max(ds.pixel_array[1]))

    async def test_jpeg2000_corpus(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess, corpus_dir: Path
    ) -> None:
        import pydicom

        path = corpus_dir / "JPEG2000.dcm"
        iid = clean_orthanc.store(path.read_bytes())["ID"]
        response = await client.get(f"/api/orthanc/instances/{iid}/preview/")
        assert response.status_code == 200
        reference = pydicom.dcmread(path)
        assert imagecodecs.png_decode(response.content).shape == (reference.Rows, reference.Columns)

    async def test_colour_corpus_multiframe(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess, corpus_dir: Path
    ) -> None:
        import pydicom

        path = corpus_dir / "SC_rgb_rle_2frame.dcm"
        iid = clean_orthanc.store(path.read_bytes())["ID"]
        response = await client.get(f"/api/orthanc/instances/{iid}/preview/", params={"frame": 1})
        assert response.status_code == 200
        reference = pydicom.dcmread(path).pixel_array[1]
        assert np.array_equal(imagecodecs.png_decode(response.content), reference)
