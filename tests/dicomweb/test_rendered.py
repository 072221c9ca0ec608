"""WADO-RS rendered and thumbnail resources (PS3.18 §10.4.1.1.3, §8.3.5), HTJ2K included."""

from __future__ import annotations

import imagecodecs
import numpy as np
import pytest

from tests.dicomweb.corpus import Corpus
from tests.dicomweb.reads import ReadServer, get, parts


def png(data: bytes) -> np.ndarray:
    return np.asarray(imagecodecs.png_decode(data))


class TestRendered:
    def test_default_is_jpeg_of_the_first_frame(
        self, read_server: ReadServer, corpus: Corpus
    ) -> None:
        answer = get(read_server, corpus["ct1"].path(read_server.dicomweb) + "/rendered")

        assert answer.status_code == 200
        assert answer.headers["Content-Type"] == "image/jpeg"
        assert np.asarray(imagecodecs.jpeg8_decode(answer.content)).shape == (32, 40)

    def test_colour_png_is_the_source_pixels(self, read_server: ReadServer, corpus: Corpus) -> None:
        item = corpus["rgb"]  # stored HTJ2K with the reversible colour transform (YBR_RCT)
        answer = get(read_server, item.path(read_server.dicomweb) + "/rendered", "image/png")

        np.testing.assert_array_equal(png(answer.content), item.frame(1))

    def test_window_parameter_replaces_the_files_window(
        self, read_server: ReadServer, corpus: Corpus
    ) -> None:
        url = corpus["ct1"].path(read_server.dicomweb) + "/rendered"
        # Stored values -2048…2047 with a rescale intercept of -1024: -3072…1023 HU.
        above = get(read_server, url + "?window=5000,10", "image/png")
        below = get(read_server, url + "?window=-5000,10,sigmoid", "image/png")
        files = get(read_server, url, "image/png")

        assert (png(above.content) == 0).all()
        assert (png(below.content) == 255).all()
        assert len(np.unique(png(files.content))) > 2  # the file's own 40/400 window

    def test_viewport_scales_and_crops(self, read_server: ReadServer, corpus: Corpus) -> None:
        url = corpus["ct1"].path(read_server.dicomweb) + "/rendered"
        full = png(get(read_server, url, "image/png").content)

        scaled = png(get(read_server, url + "?viewport=20,20", "image/png").content)
        cropped = png(get(read_server, url + "?viewport=10,8,5,4,10,8", "image/png").content)

        assert scaled.shape == (16, 20)  # 32×40 fitted into 20×20, aspect kept
        np.testing.assert_array_equal(cropped, full[4:12, 5:15])

    def test_frames_of_a_multi_frame_instance(
        self, read_server: ReadServer, corpus: Corpus
    ) -> None:
        url = corpus["mr"].path(read_server.dicomweb)
        two = parts(
            get(read_server, url + "/frames/2,9/rendered", 'multipart/related; type="image/png"')
        )
        second = get(read_server, url + "/frames/2/rendered", "image/png")

        assert [ct for ct, _ in two] == ["image/png", "image/png"]
        np.testing.assert_array_equal(png(two[0][1]), png(second.content))
        assert not np.array_equal(png(two[0][1]), png(two[1][1]))

    def test_a_study_renders_each_instance(self, read_server: ReadServer, corpus: Corpus) -> None:
        answer = get(read_server, f"{read_server.dicomweb}/studies/{corpus['ct1'].study}/rendered")

        images = parts(answer)
        assert [ct for ct, _ in images] == ["image/jpeg"] * 4
        shapes = sorted(np.asarray(imagecodecs.jpeg8_decode(b)).shape for _, b in images)
        assert shapes == [(32, 40), (32, 40), (32, 40), (100, 100, 3)]


class TestThumbnail:
    def test_thumbnails_are_small(self, read_server: ReadServer, corpus: Corpus) -> None:
        palette = get(
            read_server, corpus["palette"].path(read_server.dicomweb) + "/thumbnail", "image/png"
        )
        small = get(
            read_server, corpus["ct1"].path(read_server.dicomweb) + "/thumbnail", "image/png"
        )
        series_url = corpus["ct1"].path(read_server.dicomweb).rsplit("/instances/", 1)[0]
        series = get(read_server, series_url + "/thumbnail", "image/png")

        assert png(palette.content).shape == (56, 128, 3)  # 350×800 fitted into 128×128
        assert png(small.content).shape == (32, 40)  # never enlarged
        assert series.headers["Content-Type"] == "image/png"
        np.testing.assert_array_equal(png(series.content), png(get(
            read_server, corpus["ct2"].path(read_server.dicomweb) + "/thumbnail", "image/png"
        ).content))  # the middle instance of three  # fmt: skip


class TestRefusals:
    @pytest.mark.parametrize(
        "query", ["window=1", "window=40,0", "window=40,400,cubic", "viewport=0,10", "quality=101"]
    )
    def test_bad_parameters_are_400(
        self, read_server: ReadServer, corpus: Corpus, query: str
    ) -> None:
        answer = get(read_server, corpus["ct1"].path(read_server.dicomweb) + f"/rendered?{query}")

        assert answer.status_code == 400

    def test_other_media_types_are_406(self, read_server: ReadServer, corpus: Corpus) -> None:
        answer = get(
            read_server, corpus["ct1"].path(read_server.dicomweb) + "/rendered", "image/gif"
        )

        assert answer.status_code == 406
        assert answer.json()["error"] == (
            "Rendered images are served as image/jpeg or image/png (several in a multipart/related)"
        )

    def test_frame_past_the_last(self, read_server: ReadServer, corpus: Corpus) -> None:
        answer = get(read_server, corpus["ct1"].path(read_server.dicomweb) + "/frames/2/rendered")

        assert answer.status_code == 404
        assert answer.json()["type"] == "FrameNotFound"
