"""Lossless HTJ2K transcoding of one DICOM instance, verified bit-exact before it is returned.

Pure work over bytes and datasets (no web, no DB): it runs in the worker pool and in the CLI.
Two entry points: :func:`transcode` takes a file's bytes and returns them untouched when the
instance passes through; :func:`transcode_dataset` takes a parsed (possibly edited) dataset,
leaves it untouched, and always writes a fresh file. Which sources are transcoded is decided in
:mod:`.profiles`, the encoders are :mod:`.htj2k` and :mod:`.jpeg2000`, and "pixel-identical" is
defined in :mod:`.pixels`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRBigEndian

from dicomgate.codec import htj2k, jpeg2000
from dicomgate.codec.lossy import flag_lossy
from dicomgate.codec.pixels import check_range, check_unused_bits, crc32_of, source_frames
from dicomgate.codec.plan import EncodePlan, make_plan
from dicomgate.codec.profiles import NATIVE_SYNTAXES, pass_through_reason
from dicomgate.codec.reasons import PassThrough, PassThroughReason
from dicomgate.codec.rpcl import confirm_rpcl
from dicomgate.dicom.checks import require_sop_uids
from dicomgate.dicom.codestream import CodestreamCheck, check_codestreams
from dicomgate.dicom.image import ImageGeometry, check_native_pixel_data
from dicomgate.dicom.part10 import (
    CannotSwap,
    detached_copy,
    drop_group_lengths,
    ensure_file_meta,
    read_as_explicit_little_endian,
    set_encapsulated_pixel_data,
    shared_copy,
    source_syntax,
    to_little_endian,
    write_copy,
    write_part10,
)
from dicomgate.dicom.reading import read_dataset
from dicomgate.errors import InvalidDicom

if TYPE_CHECKING:
    from dicomgate.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TranscodeOptions:
    """How to transcode: target syntax, optional lossy quality, pixel cap, forced fallback."""

    target: str = "htj2k"
    lossy_quality: float | None = None
    max_pixels: int = 2_000_000_000
    force_fallback: bool = False

    @classmethod
    def from_settings(
        cls, settings: Settings, *, allow_lossy: bool, target: str | None = None
    ) -> TranscodeOptions:
        """The options the settings ask for. Conversions pass ``allow_lossy=False``: they
        replace stored originals and never lose data, whatever DICOMGATE_LOSSY_QUALITY says."""
        return cls(
            target=target or settings.target_syntax,
            lossy_quality=settings.lossy_quality if allow_lossy else None,
            max_pixels=settings.max_pixels,
        )


@dataclass(frozen=True)
class TranscodeResult:
    """The output file and what happened to it."""

    data: bytes
    converted: bool
    reason: PassThroughReason | None
    source_transfer_syntax: str
    transfer_syntax: str
    original_size: int
    size: int
    frames: int
    elapsed: float
    verified: bool
    frame_crc32: tuple[int, ...]
    sop_instance_uid: str


@dataclass(frozen=True)
class _Source:
    """What is known of the input before any pixel is decoded."""

    sop_instance_uid: str
    syntax: UID
    geometry: ImageGeometry | None  # None: no Pixel Data
    # May the pixel data be decoded? (dicom.codestream: no decoder ever sees a frame it has not
    # checked; a header that disagrees with the dataset was refused before this.)
    codestreams: CodestreamCheck
    pixel_data_padding: int = 0  # native Pixel Data bytes beyond the frames (kept: a reason)


@dataclass(frozen=True)
class _Encoded:
    """The converted dataset and what converting it took."""

    dataset: Dataset
    transfer_syntax: str
    frame_crc32: tuple[int, ...]
    verified: bool
    frames: int


# --- Public API ----------------------------------------------------------------------------------
def transcode(data: bytes, options: TranscodeOptions = TranscodeOptions()) -> TranscodeResult:
    """Transcode one DICOM file; a pass-through returns the input bytes unchanged."""
    start = time.perf_counter()
    ds = read_dataset(data)
    source = _inspect(ds, options)
    try:
        ensure_file_meta(ds, source.syntax)  # the dataset is ours: converted in place
        encoded = _encode(ds, options, source)
        return _converted(encoded, source, original_size=len(data), start=start)
    except PassThrough as passed:
        _log_pass_through(source, passed)
        return _passed_through(ds, source, passed, out=data, original_size=len(data), start=start)


def transcode_dataset(
    ds: Dataset, options: TranscodeOptions, *, original_size: int
) -> TranscodeResult:
    """Transcode a parsed (and possibly edited) dataset; output is always freshly serialized.

    The caller's dataset stays as it is: it is what a pass-through writes if anything fails.
    """
    start = time.perf_counter()
    source = _inspect(ds, options)
    try:
        work = _working_copy(ds, source, options)
        ensure_file_meta(work, source.syntax)
        encoded = _encode(work, options, source)
        return _converted(encoded, source, original_size=original_size, start=start)
    except PassThrough as passed:
        _log_pass_through(source, passed)
        try:
            out = write_copy(ds, source.syntax)
        except Exception as exc:  # malformed values pydicom read but cannot write back
            raise InvalidDicom(f"The DICOM file cannot be written back: {exc}") from None
        return _passed_through(
            ds, source, passed, out=out, original_size=original_size, start=start
        )


def frame_crc32s(data: bytes) -> tuple[int, ...]:
    """CRC32 of each frame of a DICOM file as pydicom decodes it (proves pixels unchanged)."""
    ds = read_dataset(data)
    if "PixelData" not in ds:
        return ()
    return tuple(crc32_of(f) for f in source_frames(ds, ImageGeometry.of(ds)))


# --- Steps ---------------------------------------------------------------------------------------
# What _rewrite changes in place (besides removing elements and the file meta).
_REWRITTEN = ("PixelData", "PlanarConfiguration", "PhotometricInterpretation")


def _working_copy(ds: Dataset, source: _Source, options: TranscodeOptions) -> Dataset:
    """The dataset ``_encode`` rewrites, so that ``ds`` stays as it is for a pass-through.

    A copy sharing the elements ``_rewrite`` leaves alone (no deep copy of the whole dataset)
    where only ``_REWRITTEN`` change: lossless output written in the encoding the source was
    read in. Byte swapping (big endian), lossy flags and re-encoding on writing may touch any
    element: a deep copy there.
    """
    if (
        source.syntax == ExplicitVRBigEndian
        or options.lossy_quality is not None
        or not read_as_explicit_little_endian(ds)
    ):
        return detached_copy(ds)
    return shared_copy(ds, _REWRITTEN)


def _inspect(ds: Dataset, options: TranscodeOptions) -> _Source:
    """Identity, transfer syntax and, for an image, its validated geometry and pixel budget.

    Raised here, before any pass-through is considered: a pixel bomb or a header that does not
    match its Pixel Data is refused whatever else is true of the instance.
    """
    sop_uid = require_sop_uids(ds)
    syntax = source_syntax(ds)
    geometry = None
    codestreams = CodestreamCheck(decodable=True)
    padding = 0
    if "PixelData" in ds:
        geometry = ImageGeometry.of(ds)
        geometry.check_budget(max_pixels=options.max_pixels)
        if syntax in NATIVE_SYNTAXES:
            padding = check_native_pixel_data(ds, geometry)
        codestreams = check_codestreams(ds, syntax)  # before any decoder, pass-through CRCs too
    return _Source(sop_uid, syntax, geometry, codestreams, padding)


def _check_eligible(ds: Dataset, source: _Source) -> ImageGeometry:
    """The geometry of an image the encoder may take; PassThrough otherwise."""
    found = pass_through_reason(
        source.syntax,
        pixel_data=source.geometry is not None,
        float_pixel_data="FloatPixelData" in ds or "DoubleFloatPixelData" in ds,
        bits_allocated=source.geometry.bits_allocated if source.geometry else None,
        bits_stored=source.geometry.bits_stored if source.geometry else None,
        signed=source.geometry.signed if source.geometry else False,
        photometric=str(ds.get("PhotometricInterpretation", "")).strip(),
        samples_per_pixel=source.geometry.samples if source.geometry else 1,
        pixel_data_padding=source.pixel_data_padding,
    )
    if found is not None:
        raise PassThrough(found.reason, found.detail)
    if not source.codestreams.decodable:
        raise PassThrough(PassThroughReason.CODEC_REFUSED, source.codestreams.reason)
    assert source.geometry is not None  # no pixel data is a pass-through
    return source.geometry


def _encode_frame(frame: np.ndarray, plan: EncodePlan) -> bytes:
    """One frame through the plan's backend."""
    if plan.encoder == "jpeg2000":
        return jpeg2000.encode_frame(frame, plan)
    return htj2k.encode_frame(frame, plan)


def _decode_frame(stream: bytes, plan: EncodePlan) -> np.ndarray:
    """One codestream back through the same backend (the verification)."""
    if plan.encoder == "jpeg2000":
        return jpeg2000.decode_frame(stream)
    return htj2k.decode_frame(stream)


def _encode(ds: Dataset, options: TranscodeOptions, source: _Source) -> _Encoded:
    """Encode every frame, verify, and rewrite ``ds`` in place; PassThrough when it cannot."""
    geometry = _check_eligible(ds, source)
    check_unused_bits(ds, source.syntax, geometry)
    plan = make_plan(
        geometry,
        str(ds.PhotometricInterpretation).strip(),
        target=options.target,
        lossy_quality=options.lossy_quality,
        force_fallback=options.force_fallback,
    )
    frames = geometry.frames
    streams: list[bytes] = []
    crcs: list[int] = []
    raw_size = 0
    # Frame by frame: decode one source frame, encode it, decode the codestream and compare,
    # then let both go. Only the codestreams accumulate, never the whole decoded image.
    decoded_frames = source_frames(ds, geometry)
    while True:
        try:
            frame = next(decoded_frames, None)
        except Exception as exc:
            raise PassThrough(
                PassThroughReason.CODEC_REFUSED, f"source pixels cannot be decoded: {exc}"
            ) from None
        if frame is None:
            break
        if len(streams) == frames:
            raise PassThrough(
                PassThroughReason.CODEC_REFUSED, f"decoded more than the {frames} frames declared"
            )
        check_range(frame, geometry.bits_stored, geometry.signed)
        crcs.append(crc32_of(frame))
        raw_size += frame.nbytes
        try:
            stream = _encode_frame(frame, plan)
        except Exception as exc:
            raise PassThrough(PassThroughReason.CODEC_REFUSED, f"encoder refused: {exc}") from None
        try:
            decoded = _decode_frame(stream, plan)
        except Exception as exc:
            raise PassThrough(
                PassThroughReason.VERIFICATION_FAILED, f"decoder failed: {exc}"
            ) from None
        if decoded.shape != frame.shape:
            raise PassThrough(
                PassThroughReason.VERIFICATION_FAILED, f"decoded shape {decoded.shape}"
            )
        if plan.lossless and not np.array_equal(decoded, frame):
            raise PassThrough(
                PassThroughReason.VERIFICATION_FAILED, "decoded pixels differ from the source"
            )
        streams.append(stream)
        del frame, decoded
    if len(streams) != frames:
        raise PassThrough(
            PassThroughReason.CODEC_REFUSED, f"decoded {len(streams)} of {frames} frames"
        )
    plan = confirm_rpcl(plan, streams)  # …4.202 only when every codestream meets its rules
    _rewrite(ds, source, plan, streams, raw_size=raw_size, samples=geometry.samples)
    return _Encoded(ds, plan.transfer_syntax, tuple(crcs), plan.lossless, frames)


def _rewrite(
    ds: Dataset,
    source: _Source,
    plan: EncodePlan,
    streams: list[bytes],
    *,
    raw_size: int,
    samples: int,
) -> None:
    """Put the codestreams and the attributes that describe them into ``ds``."""
    if source.syntax == ExplicitVRBigEndian:
        try:
            to_little_endian(ds)
        except CannotSwap as exc:
            raise PassThrough(PassThroughReason.UNSUPPORTED_TRANSFER_SYNTAX, str(exc)) from None
    drop_group_lengths(ds)  # they would be stale with the new Pixel Data
    set_encapsulated_pixel_data(ds, streams)
    ds.file_meta.TransferSyntaxUID = UID(plan.transfer_syntax)
    if samples == 3:
        ds.PlanarConfiguration = 0  # PS3.5 Table 8.2.4-1: colour-by-pixel for JPEG 2000
        if plan.colour_transform:
            ds.PhotometricInterpretation = "YBR_RCT" if plan.lossless else "YBR_ICT"
    if plan.lossy_step is not None:
        flag_lossy(
            ds,
            raw_size,
            sum(len(s) for s in streams),
            transfer_syntax=plan.transfer_syntax,
            step=plan.lossy_step,
        )


def _converted(
    encoded: _Encoded, source: _Source, *, original_size: int, start: float
) -> TranscodeResult:
    try:
        out = write_part10(encoded.dataset)
    except Exception as exc:
        raise PassThrough(
            PassThroughReason.CODEC_REFUSED, f"cannot write the result: {exc}"
        ) from None
    return TranscodeResult(
        data=out,
        converted=True,
        reason=None,
        source_transfer_syntax=str(source.syntax),
        transfer_syntax=encoded.transfer_syntax,
        original_size=original_size,
        size=len(out),
        frames=encoded.frames,
        elapsed=time.perf_counter() - start,
        verified=encoded.verified,
        frame_crc32=encoded.frame_crc32,
        sop_instance_uid=str(encoded.dataset.SOPInstanceUID),
    )


def _log_pass_through(source: _Source, passed: PassThrough) -> None:
    log.info("passing %s through: %s (%s)", source.sop_instance_uid, passed.reason, passed)


def _passed_through(
    ds: Dataset,
    source: _Source,
    passed: PassThrough,
    *,
    out: bytes,
    original_size: int,
    start: float,
) -> TranscodeResult:
    return TranscodeResult(
        data=out,
        converted=False,
        reason=passed.reason,
        source_transfer_syntax=str(source.syntax),
        transfer_syntax=str(source.syntax),
        original_size=original_size,
        size=len(out),
        frames=source.geometry.frames if source.geometry else 0,
        elapsed=time.perf_counter() - start,
        verified=False,
        frame_crc32=_crcs_or_empty(ds, source),
        sop_instance_uid=source.sop_instance_uid,
    )


def _crcs_or_empty(ds: Dataset, source: _Source) -> tuple[int, ...]:
    """Source CRCs for a pass-through where pydicom can decode the pixels, else empty."""
    if source.geometry is None or not source.codestreams.decodable:
        return ()  # (an unchecked codestream is never decoded)
    try:
        return tuple(crc32_of(f) for f in source_frames(ds, source.geometry))
    except Exception:
        return ()
