"""Content negotiation (PS3.18 §8.7) and byte ranges (RFC 9110 §14) as pure functions."""

from __future__ import annotations

import pytest

from dicomgate.dicomweb import media
from dicomgate.dicomweb.media import choose, frame_candidates, instance_candidates, parse_accept
from dicomgate.dicomweb.ranges import ByteRange, parse_range
from dicomgate.errors import NotAcceptable, RangeNotSatisfiable

HTJ2K = "1.2.840.10008.1.2.4.201"
RPCL = "1.2.840.10008.1.2.4.202"
J2K = "1.2.840.10008.1.2.4.90"
LE = "1.2.840.10008.1.2.1"


def frames(accept: str | None, stored: str, *, query: bool = False) -> tuple[str, str, bool, bool]:
    rep, wanted = choose(
        parse_accept(accept, from_query=query),
        frame_candidates(stored),
        default_multipart=True,
        what="Frames",
    )
    return media.part_media_type(wanted, rep), rep.transfer_syntax, rep.multipart, rep.as_stored


class TestFrames:
    @pytest.mark.parametrize(
        ("accept", "stored", "expected"),
        [
            # Cornerstone3D's default: anything, as stored, labelled with the real syntax.
            ("multipart/related; type=application/octet-stream; transfer-syntax=*", HTJ2K,
             ("application/octet-stream", HTJ2K, True, True)),
            ("multipart/related; type=application/octet-stream; transfer-syntax=*", RPCL,
             ("application/octet-stream", RPCL, True, True)),
            ("multipart/related; type=application/octet-stream; transfer-syntax=*", LE,
             ("application/octet-stream", LE, True, True)),
            # No syntax: application/octet-stream means Explicit VR Little Endian: decoded.
            ('multipart/related; type="application/octet-stream"', HTJ2K,
             ("application/octet-stream", LE, True, False)),
            ("*/*", HTJ2K, ("application/octet-stream", LE, True, False)),
            (None, J2K, ("application/octet-stream", LE, True, False)),
            # HTJ2K media types: the stored codestream, single part, any HTJ2K syntax.
            ("image/jhc", RPCL, ("image/jhc", RPCL, False, True)),
            ("image/jphc", HTJ2K, ("image/jphc", HTJ2K, False, True)),
            ('multipart/related; type="image/jphc"', HTJ2K, ("image/jphc", HTJ2K, True, True)),
            (f"image/jphc; transfer-syntax={RPCL}", RPCL, ("image/jphc", RPCL, False, True)),
            # JPEG 2000 lossless on request, and as stored.
            ("image/jp2", HTJ2K, ("image/jp2", J2K, False, False)),
            ("image/jp2", J2K, ("image/jp2", J2K, False, True)),
            # Preferences: q-values first, then specificity, then order.
            ("application/octet-stream;q=0.5, image/jhc", HTJ2K, ("image/jhc", HTJ2K, False, True)),
            ("image/jhc;q=0, application/octet-stream", HTJ2K,
             ("application/octet-stream", LE, False, False)),
            ("image/*, image/jp2", HTJ2K, ("image/jp2", J2K, False, False)),
            ("image/jphc, application/octet-stream", LE,
             ("application/octet-stream", LE, False, True)),
        ],
    )  # fmt: skip
    def test_choice(
        self, accept: str | None, stored: str, expected: tuple[str, str, bool, bool]
    ) -> None:
        assert frames(accept, stored) == expected

    def test_accept_query_parameter_with_an_unencoded_plus(self) -> None:
        assert (
            parse_accept("application/dicom json", from_query=True)[0].type
            == "application/dicom+json"
        )

    @pytest.mark.parametrize(
        ("accept", "stored"),
        [
            ("image/jpeg", HTJ2K),
            ("image/jphc", LE),
            (f"image/jphc; transfer-syntax={RPCL}", HTJ2K),
            (f"multipart/related; type=application/octet-stream; transfer-syntax={RPCL}", HTJ2K),
            ("image/jhc;q=0", HTJ2K),
        ],
    )
    def test_nothing_acceptable(self, accept: str, stored: str) -> None:
        with pytest.raises(NotAcceptable) as refused:
            frames(accept, stored)
        assert "it can be served as: " in refused.value.message
        assert f"transfer-syntax={LE}" in refused.value.message


class TestInstances:
    def test_stored_syntax_or_decoded(self) -> None:
        ranges = parse_accept('multipart/related; type="application/dicom"; transfer-syntax=*')
        stored, _ = choose(
            ranges, instance_candidates(HTJ2K, single_part=False), default_multipart=True, what="x"
        )
        default, _ = choose(
            parse_accept('multipart/related; type="application/dicom"'),
            instance_candidates(HTJ2K, single_part=False),
            default_multipart=True,
            what="x",
        )

        assert (stored.transfer_syntax, stored.as_stored) == (HTJ2K, True)
        assert (default.transfer_syntax, default.as_stored) == (LE, False)

    def test_single_part_only_where_offered(self) -> None:
        with pytest.raises(NotAcceptable):
            choose(
                parse_accept("application/dicom"),
                instance_candidates(HTJ2K, single_part=False),
                default_multipart=True,
                what="x",
            )
        rep, _ = choose(
            parse_accept("application/dicom"),
            instance_candidates(HTJ2K, single_part=True),
            default_multipart=True,
            what="x",
        )
        assert (rep.multipart, rep.transfer_syntax) == (False, LE)


class TestRanges:
    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            ("bytes=0-99", ByteRange(0, 99, 1000)),
            ("bytes=100-", ByteRange(100, 999, 1000)),
            ("bytes=-10", ByteRange(990, 999, 1000)),
            ("bytes=-5000", ByteRange(0, 999, 1000)),
            ("bytes=900-5000", ByteRange(900, 999, 1000)),
            ("BYTES = 1 - 2", ByteRange(1, 2, 1000)),
            (None, None),
            ("bytes=0-9,20-29", None),  # several ranges: the whole body
            ("items=0-9", None),
            ("bytes=9-0", None),
            ("bytes=-", None),
        ],
    )
    def test_parse(self, header: str | None, expected: ByteRange | None) -> None:
        assert parse_range(header, 1000) == expected

    @pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
    def test_unsatisfiable(self, header: str) -> None:
        with pytest.raises(RangeNotSatisfiable) as refused:
            parse_range(header, 1000)
        assert refused.value.headers == {"Content-Range": "bytes */1000"}

    def test_empty_body_has_no_satisfiable_range(self) -> None:
        with pytest.raises(RangeNotSatisfiable):
            parse_range("bytes=0-", 0)
