"""WADO-RS frames (PS3.18 §10.4.1.1.4) negotiated per stored syntax, with dicomweb-client and
plain requests against dicomgate under uvicorn and a real Orthanc.

Pixels are checked bit-exact against the source: stored HTJ2K codestreams with OpenJPH
(``imagecodecs.htj2k_decode``), an independent decoder; uncompressed answers byte by byte.
"""

from __future__ import annotations

import imagecodecs
import numpy as np
import pytest
from dicomweb_client import DICOMwebClient

from tests.dicomweb.corpus import (
    EXPLICIT_LE,
    HTJ2K_LOSSLESS,
    HTJ2K_RPCL,
    J2K_LOSSLESS,
    Corpus,
    Item,
)
from tests.dicomweb.reads import ReadServer, get, parts

ANY_AS_STORED = "multipart/related; type=application/octet-stream; transfer-syntax=*"


def native(item: Item, data: bytes) -> np.ndarray:
    """Uncompressed frame bytes as an array of the source's shape and type."""
    expected = item.frame(1)
    return np.frombuffer(data, dtype=expected.dtype.newbyteorder("<")).reshape(expected.shape)


class TestAsStored:
    @pytest.mark.parametrize("name", ["ct2", "rgb", "b"])
    def test_htj2k_codestream_as_stored_decodes_bit_exact(
        self, read_server: ReadServer, corpus: Corpus, name: str
    ) -> None:
        item = corpus[name]
        answer = get(read_server, item.path(read_server.dicomweb) + "/frames/1", ANY_AS_STORED)

        assert answer.status_code == 200
        [(content_type, codestream)] = parts(answer)
        assert content_type == f"application/octet-stream; transfer-syntax={HTJ2K_LOSSLESS}"
        assert codestream[:4] == b"\xff\x4f\xff\x51"  # SOC, SIZ: a J2K codestream
        np.testing.assert_array_equal(imagecodecs.htj2k_decode(codestream), item.frame(1))

    def test_multi_frame_list_in_the_order_asked(
        self, read_server: ReadServer, corpus: Corpus
    ) -> None:
        item = corpus["mr"]
        answer = get(read_server, item.path(read_server.dicomweb) + "/frames/7,2,10", ANY_AS_STORED)

        got = parts(answer)
        assert [ct for ct, _ in got] == [
            f"application/octet-stream; transfer-syntax={HTJ2K_LOSSLESS}"
        ] * 3
        for (_, codestream), number in zip(got, (7, 2, 10), strict=True):
            np.testing.assert_array_equal(imagecodecs.htj2k_decode(codestream), item.frame(number))

    def test_rpcl_frames_are_labelled_4_202(self, read_server: ReadServer, corpus: Corpus) -> None:
        item = corpus["rpcl"]
        answer = get(read_server, item.path(read_server.dicomweb) + "/frames/1", "image/jhc")

        assert answer.status_code == 200
        assert answer.headers["Content-Type"] == f"image/jhc; transfer-syntax={HTJ2K_RPCL}"
        np.testing.assert_array_equal(imagecodecs.htj2k_decode(answer.content), item.frame(1))

    def test_fragmented_frames_without_offset_table_are_whole(
        self, read_server: ReadServer, corpus: Corpus
    ) -> None:
        # Orthanc 1.10 answers 400 for such frames: dicomgate cuts them out of the file itself.
        item = corpus["fragmented"]
        answer = get(read_server, item.path(read_server.dicomweb) + "/frames/2,1", ANY_AS_STORED)

        [(_, second), (_, first)] = parts(answer)
        np.testing.assert_array_equal(imagecodecs.htj2k_decode(second), item.frame(2))
        np.testing.assert_array_equal(imagecodecs.htj2k_decode(first), item.frame(1))

    def test_native_and_jpeg2000_stored_frames(
        self, read_server: ReadServer, corpus: Corpus
    ) -> None:
        native_item, j2k = corpus["native"], corpus["j2k"]

        plain = parts(
            get(read_server, native_item.path(read_server.dicomweb) + "/frames/1", ANY_AS_STORED)
        )
        coded = parts(get(read_server, j2k.path(read_server.dicomweb) + "/frames/1", ANY_AS_STORED))

        assert plain[0][0] == f"application/octet-stream; transfer-syntax={EXPLICIT_LE}"
        np.testing.assert_array_equal(native(native_item, plain[0][1]), native_item.frame(1))
        assert coded[0][0] == f"application/octet-stream; transfer-syntax={J2K_LOSSLESS}"
        np.testing.assert_array_equal(imagecodecs.jpeg2k_decode(coded[0][1]), j2k.frame(1))

    def test_big_endian_has_no_stored_form_to_send_so_any_means_decoded(
        self, read_server: ReadServer, corpus: Corpus
    ) -> None:
        item = corpus["big"]
        answer = get(read_server, item.path(read_server.dicomweb) + "/frames/1", ANY_AS_STORED)

        [(content_type, data)] = parts(answer)
        assert content_type == f"application/octet-stream; transfer-syntax={EXPLICIT_LE}"
        np.testing.assert_array_equal(native(item, data), item.frame(1))


class TestDecoded:
    @pytest.mark.parametrize("name", ["ct1", "rgb", "fragmented", "j2k", "big", "rpcl"])
    def test_uncompressed_frames_are_bit_exact(
        self, reader: DICOMwebClient, corpus: Corpus, name: str
    ) -> None:
        item = corpus[name]
        # dicomweb-client's default: multipart/related; type="application/octet-stream"
        [data] = reader.retrieve_instance_frames(
            item.study, item.series, item.sop, frame_numbers=[1],
            media_types=(("application/octet-stream", EXPLICIT_LE),),
        )  # fmt: skip

        np.testing.assert_array_equal(native(item, data), item.frame(1))

    def test_default_media_type_is_uncompressed(
        self, read_server: ReadServer, corpus: Corpus
    ) -> None:
        item = corpus["mr"]
        answer = get(read_server, item.path(read_server.dicomweb) + "/frames/3", "*/*")

        [(content_type, data)] = parts(answer)
        assert content_type == f"application/octet-stream; transfer-syntax={EXPLICIT_LE}"
        np.testing.assert_array_equal(native(item, data), item.frame(3))

    def test_jpeg2000_lossless_on_request(self, read_server: ReadServer, corpus: Corpus) -> None:
        item = corpus["ct3"]
        answer = get(read_server, item.path(read_server.dicomweb) + "/frames/1", "image/jp2")

        assert answer.headers["Content-Type"] == f"image/jp2; transfer-syntax={J2K_LOSSLESS}"
        np.testing.assert_array_equal(imagecodecs.jpeg2k_decode(answer.content), item.frame(1))


class TestSinglePartAndRange:
    def test_jhc_single_part_whole_and_ranges(
        self, read_server: ReadServer, corpus: Corpus
    ) -> None:
        url = corpus["ct1"].path(read_server.dicomweb) + "/frames/1"
        whole = get(read_server, url, "image/jhc")
        size = len(whole.content)

        first = get(read_server, url, "image/jhc", Range="bytes=0-99")
        open_ended = get(read_server, url, "image/jhc", Range="bytes=100-")
        suffix = get(read_server, url, "image/jhc", Range="bytes=-50")
        clamped = get(read_server, url, "image/jhc", Range=f"bytes=10-{size + 1000}")

        assert whole.status_code == 200 and whole.headers["Accept-Ranges"] == "bytes"
        assert whole.headers["Content-Type"] == f"image/jhc; transfer-syntax={HTJ2K_LOSSLESS}"
        assert (first.status_code, first.headers["Content-Range"]) == (206, f"bytes 0-99/{size}")
        assert first.content == whole.content[:100]
        assert open_ended.status_code == 206 and open_ended.content == whole.content[100:]
        assert open_ended.headers["Content-Range"] == f"bytes 100-{size - 1}/{size}"
        assert suffix.status_code == 206 and suffix.content == whole.content[-50:]
        assert clamped.headers["Content-Range"] == f"bytes 10-{size - 1}/{size}"
        assert first.content + open_ended.content == whole.content

    def test_unsatisfiable_range_is_416_with_the_size(
        self, read_server: ReadServer, corpus: Corpus
    ) -> None:
        url = corpus["ct1"].path(read_server.dicomweb) + "/frames/1"
        size = len(get(read_server, url, "image/jphc").content)

        past = get(read_server, url, "image/jphc", Range=f"bytes={size}-")
        empty = get(read_server, url, "image/jphc", Range="bytes=-0")

        for answer in (past, empty):
            assert answer.status_code == 416
            assert answer.headers["Content-Range"] == f"bytes */{size}"
            assert answer.json()["type"] == "RangeNotSatisfiable"

    def test_several_ranges_get_the_whole_body(
        self, read_server: ReadServer, corpus: Corpus
    ) -> None:
        url = corpus["ct1"].path(read_server.dicomweb) + "/frames/1"
        answer = get(read_server, url, "image/jphc", Range="bytes=0-9,20-29")

        assert answer.status_code == 200
        assert answer.content == get(read_server, url, "image/jphc").content

    def test_one_frame_multipart_is_sent_whole_and_never_cut_by_a_range(
        self, read_server: ReadServer, corpus: Corpus
    ) -> None:
        """One frame in multipart/related is answered whole (a Content-Length, no stream), and
        Range applies to single-part answers only: the multipart answer stays a 200."""
        item = corpus["ct2"]
        url = item.path(read_server.dicomweb) + "/frames/1"
        answer = get(read_server, url, ANY_AS_STORED, Range="bytes=0-99")

        assert answer.status_code == 200
        assert "Accept-Ranges" not in answer.headers and "Content-Range" not in answer.headers
        assert int(answer.headers["Content-Length"]) == len(answer.content)
        [(content_type, body)] = parts(answer)
        assert content_type == f"application/octet-stream; transfer-syntax={HTJ2K_LOSSLESS}"
        np.testing.assert_array_equal(imagecodecs.htj2k_decode(body), item.frame(1))

    def test_accept_query_parameter_replaces_the_header(
        self, read_server: ReadServer, corpus: Corpus
    ) -> None:
        item = corpus["mr"]
        url = item.path(read_server.dicomweb) + "/frames/4?accept=image/jhc"
        answer = get(read_server, url, "application/dicom+json", Range="bytes=0-")

        assert answer.status_code == 206
        assert answer.headers["Content-Type"] == f"image/jhc; transfer-syntax={HTJ2K_LOSSLESS}"
        np.testing.assert_array_equal(imagecodecs.htj2k_decode(answer.content), item.frame(4))

    def test_single_part_uncompressed(self, read_server: ReadServer, corpus: Corpus) -> None:
        item = corpus["mr"]
        answer = get(
            read_server, item.path(read_server.dicomweb) + "/frames/5", "application/octet-stream"
        )

        assert (
            answer.headers["Content-Type"]
            == f"application/octet-stream; transfer-syntax={EXPLICIT_LE}"
        )
        np.testing.assert_array_equal(native(item, answer.content), item.frame(5))


class TestRefusals:
    def test_406_names_what_can_be_served(self, read_server: ReadServer, corpus: Corpus) -> None:
        htj2k = get(
            read_server, corpus["ct1"].path(read_server.dicomweb) + "/frames/1", "image/jpeg"
        )
        native_jphc = get(
            read_server, corpus["native"].path(read_server.dicomweb) + "/frames/1", "image/jphc"
        )

        assert htj2k.status_code == 406
        message = htj2k.json()["error"]
        assert (
            f'multipart/related; type="image/jphc"; transfer-syntax={HTJ2K_LOSSLESS} (as stored)'
            in message
        )
        assert f"application/octet-stream; transfer-syntax={EXPLICIT_LE}" in message
        assert native_jphc.status_code == 406
        assert "image/jphc" not in native_jphc.json()["error"]

    def test_two_frames_cannot_be_one_part(self, read_server: ReadServer, corpus: Corpus) -> None:
        answer = get(
            read_server, corpus["mr"].path(read_server.dicomweb) + "/frames/1,2", "image/jphc"
        )

        assert answer.status_code == 406

    @pytest.mark.parametrize("frames", ["0", "11", "1,11", "x", "1,,2", "-1"])
    def test_frame_numbers_outside_the_instance(
        self, read_server: ReadServer, corpus: Corpus, frames: str
    ) -> None:
        answer = get(read_server, corpus["mr"].path(read_server.dicomweb) + f"/frames/{frames}")

        if frames in ("11", "1,11"):
            assert answer.status_code == 404
            assert answer.json() == {
                "success": False,
                "error": "Frame 11 does not exist; the instance has 10 frame(s)",
                "type": "FrameNotFound",
            }
        else:
            assert answer.status_code == 400
            assert answer.json()["type"] == "BadRequest"

    def test_unknown_uids_and_wrong_study(self, read_server: ReadServer, corpus: Corpus) -> None:
        ct, mr = corpus["ct1"], corpus["mr"]
        base = read_server.dicomweb
        wrong_study = f"{base}/studies/{mr.study}/series/{ct.series}/instances/{ct.sop}/frames/1"
        unknown = f"{base}/studies/{ct.study}/series/{ct.series}/instances/1.2.3.4/frames/1"
        not_a_uid = f"{base}/studies/{ct.study}/series/{ct.series}/instances/abc/frames/1"

        assert get(read_server, wrong_study).status_code == 404
        assert get(read_server, unknown).json()["type"] == "NotFound"
        assert get(read_server, not_a_uid).status_code == 400
