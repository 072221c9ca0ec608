"""The pass-through rules as a table, and a person's text for every reason the codec raises.

Two tables: which (transfer syntax, pixel attributes) the rules keep as they are, and one real
instance per reason, run through the transcoder. The second must cover every reason of the
enum, so a reason added without a case (and a text) fails here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import MPEG2MPML, JPEGLSNearLossless

from dicomgate.codec import transcode as transcode_module
from dicomgate.codec.plan import EncodePlan
from dicomgate.codec.profiles import Ineligible, pass_through_reason
from dicomgate.codec.reasons import REASON_TEXTS, PassThroughReason, reason_text
from dicomgate.codec.transcode import transcode
from dicomgate.conversions.commands import format_summary
from dicomgate.conversions.lifecycle import RunSummary
from tests.builders import make_dataset, to_bytes

R = PassThroughReason
NATIVE = [
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.2",
]
LOSSLESS = ["1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
            "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90"]  # fmt: skip
# .93: JPEG 2000 Part 2 multi-component; .111: JPEG XL JPEG recompression; .112: JPEG XL.
LOSSY = ["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81",
         "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.4.111",
         "1.2.840.10008.1.2.4.112"]  # fmt: skip
HTJ2K = ["1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"]
# Not decodable here: JPEG 2000 MC lossless, JPEG XL lossless, MPEG2, a private syntax.
UNKNOWN = ["1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.110", "1.2.840.10008.1.2.4.100", "1.2.3"]


def _rule(
    syntax: str,
    *,
    pixel_data: bool = True,
    float_pixel_data: bool = False,
    bits_allocated: int | None = 16,
    photometric: str = "MONOCHROME2",
    samples_per_pixel: int = 1,
) -> Ineligible | None:
    return pass_through_reason(
        syntax,
        pixel_data=pixel_data,
        float_pixel_data=float_pixel_data,
        bits_allocated=bits_allocated,
        photometric=photometric,
        samples_per_pixel=samples_per_pixel,
    )


class TestRules:
    @pytest.mark.parametrize("syntax", NATIVE + LOSSLESS)
    @pytest.mark.parametrize(
        ("bits", "photometric", "samples"),
        [(16, "MONOCHROME2", 1), (16, "MONOCHROME1", 1), (8, "PALETTE COLOR", 1),
         (8, "RGB", 3), (8, "YBR_FULL", 3), (8, "YBR_RCT", 3)],
    )  # fmt: skip
    def test_candidates(self, syntax: str, bits: int, photometric: str, samples: int) -> None:
        found = _rule(
            syntax, bits_allocated=bits, photometric=photometric, samples_per_pixel=samples
        )
        assert found is None

    @pytest.mark.parametrize(
        ("syntax", "kwargs", "expected"),
        [
            *((s, {}, Ineligible(R.LOSSY_SOURCE)) for s in LOSSY),
            *((s, {}, Ineligible(R.ALREADY_HTJ2K)) for s in HTJ2K),
            *((s, {}, Ineligible(R.UNSUPPORTED_TRANSFER_SYNTAX, f"transfer syntax {s}"))
              for s in UNKNOWN),
            (NATIVE[1], {"float_pixel_data": True, "pixel_data": False},
             Ineligible(R.FLOAT_PIXELS)),
            (HTJ2K[0], {"float_pixel_data": True}, Ineligible(R.FLOAT_PIXELS)),  # checked first
            (NATIVE[1], {"pixel_data": False}, Ineligible(R.NO_PIXEL_DATA)),
            (LOSSY[0], {"pixel_data": False}, Ineligible(R.NO_PIXEL_DATA)),
            (NATIVE[1], {"bits_allocated": 1}, Ineligible(R.BITS_ALLOCATED_1)),
            *((NATIVE[1], {"photometric": p, "samples_per_pixel": 3, "bits_allocated": 8},
               Ineligible(R.SUBSAMPLED_YBR))
              for p in ("YBR_FULL_422", "YBR_PARTIAL_422", "YBR_PARTIAL_420")),
            (NATIVE[1], {"photometric": "CMYK"},
             Ineligible(R.CODEC_REFUSED, "photometric interpretation 'CMYK'")),
            (NATIVE[1], {"photometric": ""},
             Ineligible(R.CODEC_REFUSED, "photometric interpretation ''")),
            (NATIVE[1], {"bits_allocated": 32}, Ineligible(R.CODEC_REFUSED, "Bits Allocated 32")),
            (NATIVE[1], {"bits_allocated": None},
             Ineligible(R.CODEC_REFUSED, "Bits Allocated None")),
            (NATIVE[1], {"samples_per_pixel": 4},
             Ineligible(R.CODEC_REFUSED, "4 samples per pixel")),
        ],
    )  # fmt: skip
    def test_kept_as_they_are(
        self, syntax: str, kwargs: dict[str, object], expected: Ineligible
    ) -> None:
        assert _rule(syntax, **kwargs) == expected  # type: ignore[arg-type]


class TestEveryReasonHasAText:
    def test_the_text_table_covers_the_enum(self) -> None:
        assert set(REASON_TEXTS) == set(PassThroughReason)
        texts = list(REASON_TEXTS.values())
        assert all(texts) and len(set(texts)) == len(texts)
        assert all(text not in {r.value for r in PassThroughReason} for text in texts)

    def test_unknown_codes_are_shown_as_they_are(self) -> None:
        assert reason_text("unused_bits_set") == REASON_TEXTS[R.UNUSED_BITS_SET]
        assert reason_text("some_older_code") == "some_older_code"
        assert reason_text(None) == "unknown"

    def test_a_conversion_summary_shows_the_text(self) -> None:
        summary = RunSummary(
            job_id=1,
            state="completed",
            dry_run=False,
            selection="all studies",
            skipped=2,
            skipped_by_reason={"unused_bits_set": 2},
        )
        text = format_summary(summary)
        assert f"Skipped: 2 {REASON_TEXTS[R.UNUSED_BITS_SET]}" in text
        assert "unused_bits_set" not in text


# --- One real instance per reason, through the transcoder ----------------------------------------
def _no_pixel_data() -> bytes:
    ds = make_dataset()
    del ds.PixelData
    return to_bytes(ds)


def _float_pixels() -> bytes:
    ds = make_dataset(bits_allocated=32, bits_stored=32)
    del ds.PixelData
    ds.FloatPixelData = np.zeros(64, dtype="<f4").tobytes()
    return to_bytes(ds)


def _already_htj2k() -> bytes:
    return transcode(to_bytes(make_dataset())).data


def _lossy_source() -> bytes:
    ds = make_dataset(bits_allocated=8, bits_stored=8)
    ds.compress(JPEGLSNearLossless, jls_error=2)
    return to_bytes(ds)


def _unsupported_syntax() -> bytes:
    ds = make_dataset(bits_allocated=8, bits_stored=8)
    ds.PixelData = encapsulate([ds.PixelData])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    return to_bytes(ds)


def _one_bit() -> bytes:
    ds = make_dataset(rows=8, columns=8, bits_allocated=8, bits_stored=8)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 1, 0
    ds.PixelData = b"\x55" * 8
    return to_bytes(ds)


def _subsampled() -> bytes:
    ds = make_dataset(samples=3, bits_allocated=8, bits_stored=8, photometric="YBR_FULL_422")
    ds.PixelData = ds.PixelData[: len(ds.PixelData) * 2 // 3]  # PS3.3 C.7.6.3.1.2: 2 of 3
    return to_bytes(ds)


def _unused_bits() -> bytes:
    ds = make_dataset(bits_stored=12)
    raw = np.frombuffer(ds.PixelData, "<u2").copy()
    raw[0] |= 0x8000  # an overlay bit, say
    ds.PixelData = raw.tobytes()
    return to_bytes(ds)


def _codec_refused() -> bytes:
    return to_bytes(make_dataset(bits_allocated=32, bits_stored=32))


def _verification_failed() -> bytes:
    return to_bytes(make_dataset())


INSTANCES: dict[PassThroughReason, Callable[[], bytes]] = {
    R.NO_PIXEL_DATA: _no_pixel_data,
    R.FLOAT_PIXELS: _float_pixels,
    R.ALREADY_HTJ2K: _already_htj2k,
    R.LOSSY_SOURCE: _lossy_source,
    R.UNSUPPORTED_TRANSFER_SYNTAX: _unsupported_syntax,
    R.BITS_ALLOCATED_1: _one_bit,
    R.SUBSAMPLED_YBR: _subsampled,
    R.UNUSED_BITS_SET: _unused_bits,
    R.CODEC_REFUSED: _codec_refused,
    R.VERIFICATION_FAILED: _verification_failed,
}


def test_every_reason_has_an_instance_below() -> None:
    assert set(INSTANCES) == set(PassThroughReason)


@pytest.mark.parametrize("reason", list(INSTANCES), ids=[r.value for r in INSTANCES])
def test_the_codec_raises_each_reason_with_its_text(
    reason: PassThroughReason, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = INSTANCES[reason]()
    if reason is R.VERIFICATION_FAILED:  # no real encoder errs on demand: flip one sample
        real = transcode_module._decode_frame

        def flipped(stream: bytes, plan: EncodePlan) -> np.ndarray:
            out = real(stream, plan).copy()
            out.flat[0] ^= 1
            return out

        monkeypatch.setattr(transcode_module, "_decode_frame", flipped)
    result = transcode(data)
    assert (result.converted, result.reason) == (False, reason)
    assert result.data is data  # passed through byte for byte
    assert isinstance(result.reason, PassThroughReason)
    assert reason_text(result.reason) == REASON_TEXTS[reason] != reason.value
