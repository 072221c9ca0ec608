"""What dicomgate stores decodes right in OHIF's viewer, whose HTJ2K decoder has limits.

OHIF (Cornerstone3D) decodes HTJ2K with ``@cornerstonejs/codec-openjph`` 2.4 (OpenJPH built for
WebAssembly). Three of its limits shape what the transcoder writes:

- it scrambles 3 components coded without the colour transform: YBR_FULL sources stay as they
  are (pass-through ``ybr_full``);
- it clamps samples of 8 bits or fewer to 0..255, so negative values become 0: signed 8-bit
  sources stay as they are (``signed_8bit``);
- it aborts when the image is down to 1×1 before the last wavelet level, in codestreams with one
  tile-part per resolution (dicomgate's, for progressive loading): small images get fewer levels.

``TestTheViewersDecoder`` checks each limit still exists. When one of them fails, the pinned
decoder (tests/frontend/package.json) no longer has that limit: lift its rule in
``codec.transcode`` (and SPEC's Transcoding rules) with it.
"""

from __future__ import annotations

from pathlib import Path

import imagecodecs
import numpy as np
import pytest

from dicomgate.codec.transcode import TranscodeOptions, transcode
from tests.builders import make_dataset, to_bytes
from tests.codec.helpers import frames_of, independent_pixels, parse_codestream, source_pixels
from tests.codec.openjph import OpenJPH, OpenJPHError


def _htj2k(pixels: np.ndarray, *, colour_transform: bool = False, levels: int = 5) -> bytes:
    return bytes(
        imagecodecs.htj2k_encode(
            pixels,
            reversible=True,
            rgb=colour_transform,
            resolutions=levels,
            tlm=True,
            tilepart=1,  # one tile-part per resolution, as dicomgate writes
        )
    )


class TestTheViewersDecoder:
    def test_three_components_without_colour_transform_come_out_scrambled(
        self, openjph: OpenJPH
    ) -> None:
        pixels = np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8)
        stream = _htj2k(pixels, colour_transform=False)
        assert np.array_equal(imagecodecs.htj2k_decode(stream, planar=False), pixels)  # valid
        shown = openjph.decode(stream).pixels
        assert shown.shape == pixels.shape
        assert np.count_nonzero(shown != pixels) > pixels.size // 2
        # With the colour transform (what dicomgate writes for RGB) it is exact.
        assert np.array_equal(openjph.decode(_htj2k(pixels, colour_transform=True)).pixels, pixels)

    def test_signed_8bit_samples_are_clamped_at_zero(self, openjph: OpenJPH) -> None:
        pixels = np.arange(-128, 128, dtype=np.int8).reshape(16, 16)
        frame = openjph.decode(_htj2k(pixels, levels=4))
        assert frame.signed and frame.bits_per_sample == 8
        assert np.array_equal(frame.pixels, np.maximum(pixels, 0))

    def test_an_image_down_to_one_pixel_before_the_last_level_aborts(
        self, openjph: OpenJPH
    ) -> None:
        pixels = np.random.default_rng(2).integers(0, 4096, (16, 16), dtype=np.uint16)
        with pytest.raises(OpenJPHError):  # an assertion, or an exception its glue cannot throw
            openjph.decode(_htj2k(pixels, levels=5))  # 16 → 8 → 4 → 2 → 1 → 1
        assert np.array_equal(openjph.decode(_htj2k(pixels, levels=4)).pixels, pixels)


class TestWhatDicomgateWrites:
    @pytest.mark.parametrize(
        "options",
        [
            TranscodeOptions(),
            TranscodeOptions(target="jpeg2000"),
            TranscodeOptions(lossy_quality=90),
        ],
        ids=["htj2k", "jpeg2000", "lossy"],
    )
    def test_ybr_full_stays_as_it_is(
        self, pydicom_data_dir: Path, options: TranscodeOptions
    ) -> None:
        data = (pydicom_data_dir / "SC_ybr_full_uncompressed.dcm").read_bytes()
        result = transcode(data, options)
        assert (result.converted, result.reason) == (False, "ybr_full")
        assert result.data is data

    @pytest.mark.parametrize(("allocated", "stored"), [(8, 8), (16, 8), (8, 6)])
    @pytest.mark.parametrize("samples", [1, 3])
    def test_signed_8bit_stays_as_it_is(self, allocated: int, stored: int, samples: int) -> None:
        pixels = np.arange(-8, 8, dtype=np.int16).reshape(4, 4)
        if samples == 3:
            pixels = np.stack([pixels, -pixels - 1, pixels // 2], axis=-1)
        ds = make_dataset(
            rows=4,
            columns=4,
            samples=samples,
            bits_allocated=allocated,
            bits_stored=stored,
            signed=True,
            photometric="RGB" if samples == 3 else "MONOCHROME2",
            pixels=pixels,
        )
        data = to_bytes(ds)
        result = transcode(data)
        assert (result.converted, result.reason) == (False, "signed_8bit")
        assert result.data is data

    @pytest.mark.parametrize(
        ("rows", "cols", "levels"),
        [(1, 1, 1), (2, 2, 1), (3, 5, 3), (16, 16, 4), (9, 16, 4), (17, 3, 5), (64, 64, 5)],
    )
    def test_small_images_get_the_levels_the_viewer_can_decode(
        self, rows: int, cols: int, levels: int, openjph: OpenJPH
    ) -> None:
        pixels = np.random.default_rng(rows * cols).integers(0, 4096, (rows, cols), np.uint16)
        data = to_bytes(make_dataset(rows=rows, columns=cols, pixels=pixels))
        result = transcode(data)
        assert result.converted
        fragments, _ = frames_of(result.data)
        assert parse_codestream(fragments[0]).levels == levels
        assert np.array_equal(openjph.decode_instance(result.data), source_pixels(data))
        assert np.array_equal(independent_pixels(result.data), source_pixels(data))
