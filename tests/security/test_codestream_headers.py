"""The codestream header readers (dicom/codestream.py), without a server: every compressed
syntax's valid file passes; each kind of disagreement with the dataset is refused by name."""

from __future__ import annotations

import copy

import pytest
from pydicom.dataset import Dataset

from dicomgate.codec.preview import render_preview
from dicomgate.codec.transcode import transcode
from dicomgate.dicom.codestream import (
    CodestreamCheck,
    check_codestreams,
    read_j2k_header,
    read_jpeg_header,
    read_jpeg_ls_header,
    read_rle_header,
)
from dicomgate.errors import InvalidCodestream, UnprocessableInput
from tests.builders import to_bytes
from tests.security.codestreams import (
    SEEDS,
    compressed,
    first_frame,
    resize_header,
    with_frames,
)


def _check(ds: Dataset) -> CodestreamCheck:
    return check_codestreams(ds, str(ds.file_meta.TransferSyntaxUID))


def _refusal(ds: Dataset) -> str:
    with pytest.raises(InvalidCodestream) as caught:
        _check(ds)
    assert caught.value.status_code == 422
    return caught.value.message


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_every_valid_seed_passes(name: str) -> None:
    assert _check(compressed(name)) == CodestreamCheck(decodable=True)


@pytest.mark.parametrize("name", sorted(n for n in SEEDS if n != "rle"))
class TestDisagreements:
    def test_rows_and_columns(self, name: str) -> None:
        ds = compressed(name)
        frame = resize_header(first_frame(ds), SEEDS[name].syntax, 16, 17)
        message = _refusal(with_frames(ds, SEEDS[name].syntax, [frame]))
        assert "17×16 pixels where Columns×Rows is 16×16" in message

    def test_samples_per_pixel(self, name: str) -> None:
        ds = compressed(name)
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        assert "1 components where Samples per Pixel is 3" in _refusal(ds)

    def test_a_second_frame_is_checked_too(self, name: str) -> None:
        ds = compressed(name)
        good = first_frame(ds)
        bad = resize_header(good, SEEDS[name].syntax, 60000, 60000)
        ds.NumberOfFrames = 2
        assert _refusal(with_frames(ds, SEEDS[name].syntax, [good, bad])).startswith("Frame 2")

    def test_a_header_cut_short_is_never_decoded_and_passes_through(self, name: str) -> None:
        ds = compressed(name)
        cut = with_frames(ds, SEEDS[name].syntax, [first_frame(ds)[:20]])
        checked = _check(cut)
        assert not checked.decodable and "ends inside its header" in checked.reason
        data = to_bytes(cut)
        result = transcode(data)  # kept as it is, without a decoder ever seeing the frame
        assert (result.converted, result.data, result.frame_crc32) == (False, data, ())


@pytest.mark.parametrize("name", sorted(n for n, seed in SEEDS.items() if seed.bits > 8))
def test_samples_wider_than_bits_allocated(name: str) -> None:
    ds = compressed(name)  # 12-bit samples in 16-bit cells, now said to fit 8-bit cells
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    message = _refusal(ds)
    if name == "rle":  # two byte segments where 8-bit samples make one (PS3.5 §G.2)
        assert "2 RLE segments where Samples per Pixel × bytes per sample is 1 × 1" in message
    else:
        assert "-bit samples where Bits Allocated is 8" in message


class TestJpeg2000:
    def test_jp2_wrapper_is_followed_to_its_codestream(self) -> None:
        stream = first_frame(compressed("j2k-lossless"))
        box = (8 + len(stream)).to_bytes(4, "big") + b"jp2c" + stream
        wrapped = (
            b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00\x00\x00\x14ftypjp2 \x00\x00\x00\x00jp2 "
        )
        header = read_j2k_header(wrapped + box)
        assert (header.rows, header.columns, header.components) == (16, 16, 1)

    def test_a_tile_grid_of_more_than_65535_tiles_is_never_decoded(self) -> None:
        frame = bytearray(first_frame(compressed("j2k-lossless")))
        frame[24:28] = (1).to_bytes(4, "big")  # 1×1 tiles: 256 tiles for 16×16 is fine …
        frame[28:32] = (1).to_bytes(4, "big")
        assert read_j2k_header(bytes(frame)).problem == ""
        frame[8:16] = (300).to_bytes(4, "big") * 2  # … 90,000 for 300×300 is not
        assert read_j2k_header(bytes(frame)).problem.endswith(
            "declares 90,000 tiles (at most 65535)"
        )
        ds = compressed("j2k-lossless")
        ds.Rows = ds.Columns = 300
        checked = _check(with_frames(ds, SEEDS["j2k"].syntax, [bytes(frame)]))
        assert not checked.decodable and "90,000 tiles" in checked.reason

    def test_a_bomb_that_keeps_its_small_tiles_is_still_refused_for_its_size(self) -> None:
        """Only Xsiz/Ysiz changed (60000² in 16×16 tiles: 14 million tiles): the size is held
        against the dataset before the tile grid, so this is a 422, not a quiet pass-through."""
        ds = compressed("j2k-lossless")
        frame = bytearray(first_frame(ds))
        frame[8:16] = (60000).to_bytes(4, "big") * 2
        message = _refusal(with_frames(ds, SEEDS["j2k"].syntax, [bytes(frame)]))
        assert "60000×60000 pixels where Columns×Rows is 16×16" in message


class TestJpegFamily:
    def test_jpeg_ls_frame_header_is_not_read_as_jpeg(self) -> None:
        frame = first_frame(compressed("jpeg-ls"))
        assert read_jpeg_ls_header(frame).columns == 16
        with pytest.raises(Exception, match="FFF7 is not one JPEG uses"):
            read_jpeg_header(frame)

    def test_jpeg_ls_oversize_dimension_segment_is_refused(self) -> None:
        frame = first_frame(compressed("jpeg-ls"))
        lse = b"\xff\xf8\x00\x0b\x04\x04" + (1 << 20).to_bytes(4, "big") + b"\x00"
        with pytest.raises(Exception, match="redefines the image size"):
            read_jpeg_ls_header(frame[:2] + lse + frame[2:])

    def test_two_frame_headers_are_refused(self) -> None:
        frame = first_frame(compressed("jpeg-baseline"))
        sof = frame.index(b"\xff\xc0")
        length = int.from_bytes(frame[sof + 2 : sof + 4], "big")
        doubled = (
            frame[: sof + 2 + length] + frame[sof : sof + 2 + length] + frame[sof + 2 + length :]
        )
        with pytest.raises(Exception, match="more than one frame header"):
            read_jpeg_header(doubled)


class TestRle:
    def test_segment_count_must_match_samples_and_bytes(self) -> None:
        ds = compressed("rle")  # 16-bit greyscale: two segments, one per byte (PS3.5 §G.2)
        assert len(read_rle_header(first_frame(ds))) == 2
        rgb = copy.deepcopy(ds)
        rgb.SamplesPerPixel = 3
        assert "2 RLE segments where Samples per Pixel × bytes per sample is 3 × 2" in _refusal(rgb)
        wider = copy.deepcopy(ds)
        wider.BitsAllocated, wider.BitsStored, wider.HighBit = 32, 32, 31
        assert "2 RLE segments where Samples per Pixel × bytes per sample is 1 × 4" in _refusal(
            wider
        )

    def test_a_segment_longer_than_any_coding_of_the_plane_is_refused(self) -> None:
        ds = compressed("rle")
        frame = first_frame(ds) + b"\x80" * 1024  # 1 KB of no-op runs after the last segment
        assert "more than any coding" in _refusal(with_frames(ds, SEEDS["rle"].syntax, [frame]))


class TestUncheckableSyntaxes:
    def test_are_never_decoded(self) -> None:
        ds = compressed("j2k-lossless")
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.110"  # JPEG XL Lossless
        assert _check(ds) == CodestreamCheck(
            False, "no codestream header reader for transfer syntax 1.2.840.10008.1.2.4.110"
        )

    def test_preview_refuses_them(self) -> None:
        data = to_bytes(compressed("j2k-lossless"))
        unknown = data.replace(b"1.2.840.10008.1.2.4.90", b"1.2.840.10008.1.2.4.99", 1)
        with pytest.raises(UnprocessableInput, match="The pixel data cannot be decoded"):
            render_preview(unknown, max_pixels=10**6)
