"""Lossless HTJ2K transcoding of one DICOM instance, verified bit-exact before it is returned.

Pure work over bytes and datasets (no web, no DB): it runs in the worker pool and in the CLI.

"Pixel-identical" here means: the stored pixel values, as pydicom decodes them (``raw=True``: no
colour-space conversion, palette indices kept, signed values sign-extended from Bits Stored), are
equal in the source and in the output, frame by frame. Bits above the high bit are not pixel data
(PS3.5 §8.1.1); if a source carries anything there other than zeros or a sign extension, it could
be an embedded overlay, so the instance is passed through unchanged (reason ``unused_bits_set``).
"""

from __future__ import annotations

import copy
import logging
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import imagecodecs
import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate, encapsulate_extended
from pydicom.errors import InvalidDicomError
from pydicom.pixels.utils import iter_pixels
from pydicom.tag import BaseTag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from dicomgate import __version__
from dicomgate.codec.capabilities import (
    HTJ2K,
    HTJ2K_SYNTAXES,
    codec_status,
)
from dicomgate.codec.decoding import quiet_plugin_failures
from dicomgate.dicom.codestream import check_codestreams
from dicomgate.dicom.uids import derived_uid
from dicomgate.errors import ImageTooLarge, InvalidDicom, NotDicom

log = logging.getLogger(__name__)

# dicomgate's own Implementation Class UID (a 2.25 UUID-derived UID, PS3.5 §B.2) and version name.
IMPLEMENTATION_CLASS_UID = "2.25.229437963346155452542036577102587404231"
IMPLEMENTATION_VERSION_NAME = f"DICOMGATE_{__version__}"[:16]

NATIVE_SYNTAXES = frozenset(
    {
        ImplicitVRLittleEndian,
        ExplicitVRLittleEndian,
        ExplicitVRBigEndian,
        DeflatedExplicitVRLittleEndian,
    }
)
LOSSLESS_COMPRESSED_SYNTAXES = frozenset(
    {RLELossless, JPEGLossless, JPEGLosslessSV1, JPEGLSLossless, JPEG2000Lossless}
)
LOSSY_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.4.50",  # JPEG baseline
        "1.2.840.10008.1.2.4.51",  # JPEG extended
        "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
        "1.2.840.10008.1.2.4.91",  # JPEG 2000 (lossy or lossless: cannot be told apart)
        "1.2.840.10008.1.2.4.93",  # JPIP JPEG 2000
        "1.2.840.10008.1.2.4.111",  # JPEG XL (lossy)
        "1.2.840.10008.1.2.4.112",  # JPEG XL recompression
    }
)
SUBSAMPLED_PHOTOMETRIC = frozenset({"YBR_FULL_422", "YBR_PARTIAL_422", "YBR_PARTIAL_420"})
SUPPORTED_PHOTOMETRIC = frozenset(
    {"MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "YBR_FULL", "YBR_RCT"}
)
# Past this, a Basic Offset Table's 32-bit offsets overflow: use the Extended Offset Table.
_BOT_LIMIT = 2**32 - 1
_MIN_LOWEST_RESOLUTION = 64  # HTJ2K Lossless RPCL: lowest resolution ≤ 64 pixels (PS3.5 §A.4.x)
_UNUSED_BITS_SLICE = 1 << 20  # samples checked at once for bits above the high bit


@dataclass(frozen=True)
class TranscodeOptions:
    """How to transcode: target syntax, optional lossy quality, pixel cap, forced fallback."""

    target: str = "htj2k"
    lossy_quality: float | None = None
    max_pixels: int = 2_000_000_000
    force_fallback: bool = False


@dataclass(frozen=True)
class TranscodeResult:
    """The output file and what happened to it."""

    data: bytes
    converted: bool
    reason: str | None
    source_transfer_syntax: str
    transfer_syntax: str
    original_size: int
    size: int
    frames: int
    elapsed: float
    verified: bool
    frame_crc32: tuple[int, ...]
    sop_instance_uid: str


class _PassThrough(Exception):
    """Internal: the instance is valid but stays as it is, for ``reason``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


# --- Parsing -------------------------------------------------------------------------------------
def read_dataset(data: bytes) -> FileDataset:
    """Parse DICOM bytes (Part 10, or a bare dataset), mapping failures to domain errors."""
    if len(data) < 8:
        raise NotDicom("The file is not DICOM (too short)")
    part10 = len(data) >= 132 and data[128:132] == b"DICM"
    try:
        ds = pydicom.dcmread(BytesIO(data), force=not part10)
    except InvalidDicomError:
        raise NotDicom("The file is not DICOM (no 'DICM' marker)") from None
    except Exception as exc:  # pydicom raises many kinds on corrupt input
        if not part10:
            raise NotDicom("The file is not DICOM") from None
        raise InvalidDicom(f"The DICOM file is corrupt or truncated: {exc}") from None
    if not part10 and not _looks_like_bare_dataset(ds):
        raise NotDicom("The file is not DICOM")
    return ds


def _looks_like_bare_dataset(ds: Dataset) -> bool:
    """A forced read of random bytes yields junk tags; a real dataset has SOP identity."""
    return "SOPClassUID" in ds or "SOPInstanceUID" in ds


def _source_syntax(ds: Dataset) -> UID:
    """The dataset's transfer syntax: the file meta's, else how pydicom read it."""
    meta = getattr(ds, "file_meta", None)
    tsyntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if tsyntax:
        return UID(str(tsyntax))
    implicit, little = getattr(ds, "original_encoding", (True, True))
    if little:
        return ImplicitVRLittleEndian if implicit in (True, None) else ExplicitVRLittleEndian
    return ExplicitVRBigEndian


def _require_sop_identity(ds: Dataset) -> str:
    """SOP Class and Instance UID are mandatory in every composite instance (PS3.3 C.12.1)."""
    sop_class = ds.get("SOPClassUID")
    sop_uid = ds.get("SOPInstanceUID")
    if not sop_class or not sop_uid:
        missing = "SOP Class UID" if not sop_class else "SOP Instance UID"
        raise InvalidDicom(f"The DICOM file has no {missing}")
    return str(sop_uid)


# --- Checks before decoding ----------------------------------------------------------------------
def _int(ds: Dataset, keyword: str, default: int | None = None) -> int:
    value = ds.get(keyword, default)
    if value is None or value == "":
        if default is None:
            raise InvalidDicom(f"The image has no {keyword}")
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidDicom(f"The image has an invalid {keyword}: {value!r}") from None


def _geometry(ds: Dataset) -> tuple[int, int, int, int, int, int, int]:
    """Rows, Columns, Samples, Frames, BitsAllocated, BitsStored, PixelRepresentation."""
    rows = _int(ds, "Rows")
    cols = _int(ds, "Columns")
    samples = _int(ds, "SamplesPerPixel", 1)
    frames = _int(ds, "NumberOfFrames", 1) or 1
    allocated = _int(ds, "BitsAllocated")
    stored = _int(ds, "BitsStored", allocated)
    signed = _int(ds, "PixelRepresentation", 0)
    if rows <= 0 or cols <= 0 or samples <= 0 or frames <= 0 or allocated <= 0:
        raise InvalidDicom(
            f"The image has invalid dimensions: {rows}×{cols}, {samples} samples, {frames} frames"
        )
    if stored <= 0 or stored > allocated:
        raise InvalidDicom(f"Bits Stored {stored} does not fit Bits Allocated {allocated}")
    return rows, cols, samples, frames, allocated, stored, signed


def check_pixel_budget(ds: Dataset, *, max_pixels: int, native: bool) -> int:
    """Refuse pixel bombs from the header alone (nothing decoded or allocated); return frames."""
    rows, cols, samples, frames, allocated, _stored, _signed = _geometry(ds)
    pixels = rows * cols * samples * frames
    if pixels > max_pixels:
        raise ImageTooLarge(
            f"The image declares {rows}×{cols}×{samples} samples×{frames} frames = {pixels:,} "
            f"pixels, more than the limit of {max_pixels:,}"
        )
    if native and allocated >= 8:
        expected = pixels * allocated // 8
        photometric = str(ds.get("PhotometricInterpretation", "")).strip()
        if photometric in ("YBR_FULL_422", "YBR_PARTIAL_422"):  # PS3.3 C.7.6.3.1.2: 2 of 3
            expected = expected * 2 // 3
        elif photometric == "YBR_PARTIAL_420":
            expected = expected // 2
        actual = len(ds.PixelData)
        # PS3.5 §8.1.1: the value is padded to an even length with one byte at most.
        if actual < expected or actual > expected + (expected & 1):
            raise InvalidDicom(
                f"Pixel Data is {actual:,} bytes but Rows×Columns×Samples×Frames×bytes "
                f"({rows}×{cols}×{samples}×{frames}×{allocated // 8}) requires {expected:,}"
            )
    return frames


def pass_through_reason(
    syntax: str,
    *,
    pixel_data: bool,
    float_pixel_data: bool,
    bits_allocated: int | None,
    photometric: str,
    samples_per_pixel: int,
) -> tuple[str, str] | None:
    """Why an instance stays as it is (SPEC: Transcoding rules) as (reason, detail), or None.

    Pure, on the few attributes the rules read: the transcoder applies it to a parsed dataset,
    and the conversion dry run to the tags Orthanc lists (nothing downloaded), so both decide
    the same. An unknown ``bits_allocated`` (None) is refused like any unsupported value.
    """
    if float_pixel_data:
        return "float_pixels", ""
    if not pixel_data:
        return "no_pixel_data", ""
    if syntax in HTJ2K_SYNTAXES:
        return "already_htj2k", ""
    if syntax in LOSSY_SYNTAXES:
        return "lossy_source", ""
    if syntax not in NATIVE_SYNTAXES and syntax not in LOSSLESS_COMPRESSED_SYNTAXES:
        return "unsupported_transfer_syntax", f"transfer syntax {syntax}"
    if bits_allocated == 1:
        return "bits_allocated_1", ""
    if photometric in SUBSAMPLED_PHOTOMETRIC:
        return "subsampled_ybr", ""
    if photometric not in SUPPORTED_PHOTOMETRIC:
        return "codec_refused", f"photometric interpretation {photometric!r}"
    if bits_allocated not in (8, 16):
        return "codec_refused", f"Bits Allocated {bits_allocated}"
    if samples_per_pixel not in (1, 3):
        return "codec_refused", f"{samples_per_pixel} samples per pixel"
    return None


def _pass_through_reason(ds: Dataset, source: UID) -> None:
    """Raise _PassThrough when the instance must stay as it is (see ``pass_through_reason``)."""
    pixels = "PixelData" in ds  # when present, check_pixel_budget has validated the geometry
    found = pass_through_reason(
        source,
        pixel_data=pixels,
        float_pixel_data="FloatPixelData" in ds or "DoubleFloatPixelData" in ds,
        bits_allocated=_int(ds, "BitsAllocated") if pixels else None,
        photometric=str(ds.get("PhotometricInterpretation", "")).strip(),
        samples_per_pixel=_int(ds, "SamplesPerPixel", 1) if pixels else 1,
    )
    if found is not None:
        raise _PassThrough(*found)


# --- Pixels --------------------------------------------------------------------------------------
def _canonical_dtype(allocated: int, signed: bool) -> np.dtype[Any]:
    return np.dtype(f"<{'i' if signed else 'u'}{max(1, allocated // 8)}")


def _source_frames(ds: Dataset) -> Iterator[np.ndarray]:
    """Each frame as pydicom decodes it (raw: no colour conversion), interleaved samples."""
    allocated = _int(ds, "BitsAllocated")
    signed = bool(_int(ds, "PixelRepresentation", 0))
    dtype = _canonical_dtype(allocated, signed)
    frames = iter_pixels(ds, raw=True)
    while True:
        # A plugin that fails is not news here: the caller passes the instance through and
        # says why (quiet only while pydicom decodes, not while the caller holds the frame).
        with quiet_plugin_failures():
            frame = next(frames, None)
        if frame is None:
            return
        yield np.ascontiguousarray(frame, dtype=dtype)


def _check_unused_bits(ds: Dataset, source: UID, stored: int, allocated: int, signed: bool) -> None:
    """Refuse to drop information kept above the high bit (PS3.5 §8.1.1; retired overlays)."""
    if stored == allocated:
        return
    if source in NATIVE_SYNTAXES:
        dtype = np.dtype(f"{'>' if source == ExplicitVRBigEndian else '<'}u{allocated // 8}")
        raw = np.frombuffer(ds.PixelData, dtype=dtype, count=len(ds.PixelData) // dtype.itemsize)
        full = (1 << (allocated - stored)) - 1
        # In slices: the temporaries below are several times the slice, never the whole image.
        for start in range(0, raw.size, _UNUSED_BITS_SLICE):
            part = raw[start : start + _UNUSED_BITS_SLICE]
            high = part >> stored
            if signed:
                sign = (part >> (stored - 1)) & 1
                # Per pixel: all-zero high bits, or a correct sign extension of a negative value.
                bad = bool(np.any((high != 0) & ~((high == full) & (sign == 1))))
            else:
                bad = bool(np.any(high))
            if bad:
                raise _PassThrough("unused_bits_set", "bits above the high bit are set")


def _encoder_array(frame: np.ndarray, stored: int, signed: bool) -> tuple[np.ndarray, int]:
    """The array to hand the encoder and its container bit depth.

    ``htj2k_encode`` writes the container depth (8 or 16) as the codestream precision; the
    codestream is re-labelled with the real precision (Bits Stored) afterwards, see
    :func:`_set_precision`. Unsigned values are offset so that the decoder's DC level shift for
    the real precision (PS3.15444-1 Annex G.1) reproduces them exactly.
    """
    depth = 8 if stored <= 8 else 16
    if signed:
        arr = frame.astype(np.int8 if depth == 8 else np.int16, copy=False)
    else:
        offset = (1 << (depth - 1)) - (1 << (stored - 1))
        wide = frame.astype(np.uint32) + offset if offset else frame
        arr = np.asarray(wide).astype(np.uint8 if depth == 8 else np.uint16)
    return np.ascontiguousarray(arr), depth


def _set_precision(codestream: bytes, stored: int, signed: bool) -> bytes:
    """Rewrite each component's Ssiz in the SIZ marker to the real precision (Bits Stored)."""
    if codestream[:4] != b"\xff\x4f\xff\x51":
        raise ValueError("not a J2K codestream")
    csiz = int.from_bytes(codestream[40:42], "big")
    buf = bytearray(codestream)
    value = (0x80 if signed else 0) | (stored - 1)
    for c in range(csiz):
        buf[42 + 3 * c] = value
    return bytes(buf)


def _decomposition_levels(rows: int, cols: int) -> int:
    """Enough wavelet levels that the lowest resolution is ≤ 64 pixels (HTJ2K RPCL rule)."""
    levels, side = 0, max(rows, cols)
    while side > _MIN_LOWEST_RESOLUTION:
        side = (side + 1) // 2
        levels += 1
    return max(levels, 5)


@dataclass(frozen=True)
class _Plan:
    encoder: str  # "htj2k" or "jpeg2000"
    transfer_syntax: str
    lossy_step: float | None
    colour_transform: bool
    stored: int
    signed: bool
    levels: int


def _encode_frame(frame: np.ndarray, plan: _Plan) -> bytes:
    """Encode one frame (rows × cols [× 3], interleaved) as a J2K/HTJ2K codestream."""
    if plan.lossy_step is not None:
        return bytes(
            imagecodecs.htj2k_encode(
                frame,
                plan.lossy_step,
                reversible=False,
                rgb=plan.colour_transform,
                resolutions=plan.levels,
                tlm=True,
                tilepart=1,
            )
        )
    if plan.encoder == "jpeg2000":
        return bytes(
            imagecodecs.jpeg2k_encode(
                frame,
                codecformat="J2K",
                reversible=True,
                level=0,
                bitspersample=plan.stored,
                mct=plan.colour_transform,
                resolutions=_j2k_resolutions(frame.shape[0], frame.shape[1], plan.levels),
                numthreads=1,
            )
        )
    arr, depth = _encoder_array(frame, plan.stored, plan.signed)
    stream = bytes(
        imagecodecs.htj2k_encode(
            arr,
            reversible=True,
            rgb=plan.colour_transform,
            resolutions=plan.levels,
            tlm=True,
            tilepart=1,
        )
    )
    if plan.stored != depth:
        stream = _set_precision(stream, plan.stored, plan.signed)
    return stream


def _j2k_resolutions(rows: int, cols: int, levels: int) -> int:
    """OpenJPEG needs each dimension ≥ 2**(resolutions - 1): fewer levels for tiny images."""
    return min(levels, max(min(rows, cols).bit_length() - 1, 0)) + 1


def _decode_frame(stream: bytes, plan: _Plan) -> np.ndarray:
    if plan.encoder == "jpeg2000":
        return np.asarray(imagecodecs.jpeg2k_decode(stream, planar=False))
    return np.asarray(imagecodecs.htj2k_decode(stream, planar=False))


def crc32_of(frame: np.ndarray) -> int:
    """CRC32 of one decoded frame in canonical little-endian layout."""
    little = frame.dtype.newbyteorder("<")
    if frame.dtype != little:  # only big-endian sources need a byte-swapped copy
        frame = frame.astype(little)
    return zlib.crc32(np.ascontiguousarray(frame).data)


# --- Output --------------------------------------------------------------------------------------
def _serialize(ds: Dataset) -> bytes:
    """Write a Part 10 file with a zeroed preamble and dicomgate's implementation identity."""
    if not isinstance(ds, FileDataset) or getattr(ds, "file_meta", None) is None:
        meta = FileMetaDataset(getattr(ds, "file_meta", None) or FileMetaDataset())
        ds.file_meta = meta
    meta = ds.file_meta
    if "TransferSyntaxUID" not in meta:
        meta.TransferSyntaxUID = _source_syntax(ds)
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    if "FileMetaInformationVersion" not in meta:
        meta.FileMetaInformationVersion = b"\x00\x01"
    ds.preamble = b"\x00" * 128
    out = BytesIO()
    syntax = UID(meta.TransferSyntaxUID)
    target = (syntax.is_implicit_VR, syntax.is_little_endian)
    if getattr(ds, "original_encoding", target) not in (target, (None, None)):
        # Converting from implicit VR or big endian: the encoding follows the new syntax.
        pydicom.dcmwrite(
            out, ds, implicit_vr=target[0], little_endian=target[1], force_encoding=True
        )
    else:  # same encoding: raw elements are written back as read (fast, byte-exact)
        pydicom.dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


_SWAP_SIZES = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def _to_little_endian(ds: Dataset) -> None:
    """Byte-swap the binary values a big endian dataset keeps as raw bytes (PS3.5 §7.3).

    Parsed values (US, SS, FL, …) are re-encoded by pydicom; OW/OF/OL/OD/OV are bytes and must be
    swapped here. An element of unknown VR (UN) cannot be swapped safely: refuse.
    """
    for elem in ds.iterall():
        if elem.tag == 0x7FE00010 or elem.value is None or elem.value == b"":
            continue
        if elem.VR == "UN":
            raise _PassThrough(
                "unsupported_transfer_syntax", f"big endian element {elem.tag} of unknown VR"
            )
        size = _SWAP_SIZES.get(elem.VR)
        if size and isinstance(elem.value, bytes):
            elem.value = np.frombuffer(elem.value, dtype=f">u{size}").astype(f"<u{size}").tobytes()


def _set_pixel_data(ds: Dataset, streams: list[bytes]) -> None:
    """One fragment per frame with a Basic (or, past 4 GiB, Extended) Offset Table (PS3.5 A.4)."""
    total = sum(len(s) + (len(s) & 1) + 8 for s in streams)
    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if keyword in ds:
            del ds[keyword]
    if total > _BOT_LIMIT:
        pixel_data, offsets, lengths = encapsulate_extended(streams)
        ds.PixelData = pixel_data
        ds.ExtendedOffsetTable = offsets
        ds.ExtendedOffsetTableLengths = lengths
    else:
        ds.PixelData = encapsulate(streams, has_bot=True)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True


def _make_plan(ds: Dataset, options: TranscodeOptions, geometry: tuple[int, ...]) -> _Plan:
    rows, cols, samples, _frames, _allocated, stored, signed = geometry
    photometric = str(ds.PhotometricInterpretation).strip()
    status = codec_status(options.target, force_fallback=options.force_fallback)
    if not status.available:
        raise _PassThrough("codec_refused", "no lossless encoder available")
    # A JPEG 2000 lossless source labelled YBR_RCT decodes to RGB (the codec undoes the RCT).
    colour = samples == 3 and photometric in ("RGB", "YBR_RCT")
    if options.lossy_quality is not None:
        if status.encoder != "htj2k":
            raise _PassThrough("codec_refused", "lossy mode needs the HTJ2K encoder")
        # The step is relative to the container's range (8/16 bits): scale it to Bits Stored.
        step = lossy_step(options.lossy_quality) * 2.0 ** (stored - geometry[4])
        return _Plan(
            "htj2k", HTJ2K, step, colour, stored, bool(signed), _decomposition_levels(rows, cols)
        )
    if status.fallback:
        log.warning("HTJ2K encoding unavailable: falling back to JPEG 2000 lossless")
    return _Plan(
        status.encoder,
        status.transfer_syntax,
        None,
        colour,
        stored,
        bool(signed),
        _decomposition_levels(rows, cols),
    )


def lossy_step(quality: float) -> float:
    """Map a quality in (0, 100] (100 = best) to an irreversible quantization step."""
    q = min(max(float(quality), 0.1), 100.0)
    return 0.0005 + (100.0 - q) / 100.0 * 0.05


def _convert(
    ds: Dataset, options: TranscodeOptions, source: UID
) -> tuple[Dataset, str, tuple[int, ...], bool, int]:
    """Encode every frame, verify, and rewrite ``ds`` in place; return what was done."""
    geometry = _geometry(ds)
    _rows, _cols, samples, frames, allocated, stored, signed = geometry
    _check_unused_bits(ds, source, stored, allocated, bool(signed))
    plan = _make_plan(ds, options, geometry)
    streams: list[bytes] = []
    crcs: list[int] = []
    raw_size = 0
    # Frame by frame: decode one source frame, encode it, decode the codestream and compare,
    # then let both go. Only the codestreams accumulate, never the whole decoded image.
    source_frames = _source_frames(ds)
    while True:
        try:
            frame = next(source_frames, None)
        except Exception as exc:
            raise _PassThrough("codec_refused", f"source pixels cannot be decoded: {exc}") from None
        if frame is None:
            break
        if len(streams) == frames:
            raise _PassThrough("codec_refused", f"decoded more than the {frames} frames declared")
        _check_range(frame, stored, bool(signed))
        crcs.append(crc32_of(frame))
        raw_size += frame.nbytes
        try:
            stream = _encode_frame(frame, plan)
        except Exception as exc:
            raise _PassThrough("codec_refused", f"encoder refused: {exc}") from None
        try:
            decoded = _decode_frame(stream, plan)
        except Exception as exc:
            raise _PassThrough("verification_failed", f"decoder failed: {exc}") from None
        if decoded.shape != frame.shape:
            raise _PassThrough("verification_failed", f"decoded shape {decoded.shape}")
        if plan.lossy_step is None and not np.array_equal(decoded, frame):
            raise _PassThrough("verification_failed", "decoded pixels differ from the source")
        streams.append(stream)
        del frame, decoded
    if len(streams) != frames:
        raise _PassThrough("codec_refused", f"decoded {len(streams)} of {frames} frames")
    if source == ExplicitVRBigEndian:
        _to_little_endian(ds)
    # keys(), not the dataset: iterating elements would convert every raw value (slow).
    for tag in [tag for tag in ds.keys() if tag.element == 0]:  # noqa: SIM118
        del ds[tag]  # group lengths (retired, PS3.5 §7.2) would be stale with new Pixel Data
    _set_pixel_data(ds, streams)
    ds.file_meta.TransferSyntaxUID = UID(plan.transfer_syntax)
    if samples == 3:
        ds.PlanarConfiguration = 0  # PS3.5 §8.2.4/§8.2.14: colour-by-pixel for J2K
        if plan.colour_transform:
            ds.PhotometricInterpretation = "YBR_RCT" if plan.lossy_step is None else "YBR_ICT"
    if plan.lossy_step is not None:
        _flag_lossy(
            ds,
            raw_size,
            sum(len(s) for s in streams),
            transfer_syntax=plan.transfer_syntax,
            step=plan.lossy_step,
        )
    return ds, plan.transfer_syntax, tuple(crcs), plan.lossy_step is None, frames


def _check_range(frame: np.ndarray, stored: int, signed: bool) -> None:
    """Decoded values must fit Bits Stored, or the J2K precision cannot hold them."""
    if signed:
        lo, hi = -(1 << (stored - 1)), (1 << (stored - 1)) - 1
    else:
        lo, hi = 0, (1 << stored) - 1
    if frame.size and (int(frame.min()) < lo or int(frame.max()) > hi):
        raise _PassThrough("unused_bits_set", "decoded values exceed Bits Stored")


# Fixed forever: changing it changes every lossy derivative's UID (a retry would duplicate).
LOSSY_UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:dicomgate:lossy-derivative")


def lossy_sop_instance_uid(source_uid: str, transfer_syntax: str, step: float) -> str:
    """The new SOP Instance UID of a lossy derivative: new (PS3.3 C.7.6.1.1.5), but a pure
    function of the source instance and the encoding, so an upload retried in lossy mode stores
    the same instance again (Orthanc: ``AlreadyStored``) instead of a duplicate."""
    return derived_uid(LOSSY_UID_NAMESPACE, source_uid, transfer_syntax, repr(step))


def _flag_lossy(
    ds: Dataset, raw_size: int, encoded_size: int, *, transfer_syntax: str, step: float
) -> None:
    """PS3.3 C.7.6.1.1.5: Lossy Image Compression, ratio and method; new SOP Instance UID."""
    ds.LossyImageCompression = "01"
    ratio = f"{raw_size / max(encoded_size, 1):.4g}"[:16]
    method = "ISO_15444_15"
    old_ratios = list(ds.get("LossyImageCompressionRatio") or [])
    old_methods = list(ds.get("LossyImageCompressionMethod") or [])
    ds.LossyImageCompressionRatio = [*map(str, old_ratios), ratio]
    ds.LossyImageCompressionMethod = [*map(str, old_methods), method]
    image_type = list(ds.get("ImageType") or ["DERIVED", "SECONDARY"])
    image_type[0] = "DERIVED"
    ds.ImageType = image_type
    ds.SOPInstanceUID = lossy_sop_instance_uid(str(ds.SOPInstanceUID), transfer_syntax, step)


# --- Public API ----------------------------------------------------------------------------------
def transcode(data: bytes, options: TranscodeOptions = TranscodeOptions()) -> TranscodeResult:
    """Transcode one DICOM file; a pass-through returns the input bytes unchanged."""
    start = time.perf_counter()
    ds = read_dataset(data)
    return _run(ds, options, original_size=len(data), original=data, start=start)


def transcode_dataset(
    ds: Dataset, options: TranscodeOptions, *, original_size: int
) -> TranscodeResult:
    """Transcode a parsed (and possibly edited) dataset; output is always freshly serialized."""
    return _run(ds, options, original_size=original_size, original=None, start=time.perf_counter())


def _run(
    ds: Dataset,
    options: TranscodeOptions,
    *,
    original_size: int,
    original: bytes | None,
    start: float,
) -> TranscodeResult:
    sop_uid = _require_sop_identity(ds)
    source = _source_syntax(ds)
    frames = 0
    if "PixelData" in ds:  # bombs are refused whatever else is true of the instance
        frames = check_pixel_budget(
            ds, max_pixels=options.max_pixels, native=source in NATIVE_SYNTAXES
        )
    checked = check_codestreams(ds, source)  # before any decoder (pass-through CRCs included)
    try:
        _pass_through_reason(ds, source)
        if not checked.decodable:
            raise _PassThrough("codec_refused", checked.reason)
        # The caller's dataset stays as is (it is the fallback if anything below fails).
        work = _detached_copy(ds) if original is None else ds
        if getattr(work, "file_meta", None) is None or "TransferSyntaxUID" not in work.file_meta:
            work.file_meta = FileMetaDataset(getattr(work, "file_meta", None) or {})
            work.file_meta.TransferSyntaxUID = source
        converted_ds, syntax, crcs, verified, frames = _convert(work, options, source)
        try:
            out = _serialize(converted_ds)
        except Exception as exc:
            raise _PassThrough("codec_refused", f"cannot write the result: {exc}") from None
        return TranscodeResult(
            data=out,
            converted=True,
            reason=None,
            source_transfer_syntax=str(source),
            transfer_syntax=syntax,
            original_size=original_size,
            size=len(out),
            frames=frames,
            elapsed=time.perf_counter() - start,
            verified=verified,
            frame_crc32=crcs,
            sop_instance_uid=str(converted_ds.SOPInstanceUID),
        )
    except _PassThrough as passed:
        log.info("passing %s through: %s (%s)", sop_uid, passed.reason, passed)
        try:
            out = original if original is not None else _serialize(_fresh_copy(ds, source))
        except Exception as exc:  # malformed values pydicom read but cannot write back
            raise InvalidDicom(f"The DICOM file cannot be written back: {exc}") from None
        return TranscodeResult(
            data=out,
            converted=False,
            reason=passed.reason,
            source_transfer_syntax=str(source),
            transfer_syntax=str(source),
            original_size=original_size,
            size=len(out),
            frames=frames or _frames_or_zero(ds),
            elapsed=time.perf_counter() - start,
            verified=False,
            frame_crc32=_crcs_or_empty(ds) if checked.decodable else (),
            sop_instance_uid=sop_uid,
        )


def _detached_copy(ds: Dataset) -> Dataset:
    """A deep copy of ``ds`` without the buffer pydicom keeps of the bytes it was read from.

    ``FileDataset.buffer`` is the whole file again, and ``copy.deepcopy`` copies a BytesIO's
    contents, so a plain deep copy doubles the instance in memory. The buffer is only read back
    for deferred elements: when there are none, the copy does not need it. (Pixel Data itself
    is immutable ``bytes``, which a deep copy shares; it is replaced, never changed in place.)
    """
    buffer = getattr(ds, "buffer", None)
    if buffer is None or any(_is_deferred(ds, tag) for tag in ds.keys()):  # noqa: SIM118
        return copy.deepcopy(ds)
    return copy.deepcopy(ds, {id(buffer): None})


def _is_deferred(ds: Dataset, tag: BaseTag) -> bool:
    """True for an element whose value pydicom has not read yet (``dcmread(defer_size=…)``)."""
    elem = ds.get_item(tag, keep_deferred=True)  # without keep_deferred it would read it
    return isinstance(elem, RawDataElement) and elem.value is None and bool(elem.length)


def _fresh_copy(ds: Dataset, source: UID) -> Dataset:
    work = _detached_copy(ds)
    work.file_meta = FileMetaDataset(getattr(ds, "file_meta", None) or {})
    if "TransferSyntaxUID" not in work.file_meta:
        work.file_meta.TransferSyntaxUID = source
    return work


def _frames_or_zero(ds: Dataset) -> int:
    if "PixelData" not in ds:
        return 0
    try:
        return _int(ds, "NumberOfFrames", 1) or 1
    except InvalidDicom:
        return 0


def _crcs_or_empty(ds: Dataset) -> tuple[int, ...]:
    """Source CRCs for a pass-through where pydicom can decode the pixels, else empty."""
    if "PixelData" not in ds:
        return ()
    try:
        return tuple(crc32_of(f) for f in _source_frames(ds))
    except Exception:
        return ()


def frame_crc32s(data: bytes) -> tuple[int, ...]:
    """CRC32 of each frame of a DICOM file as pydicom decodes it (proves pixels unchanged)."""
    ds = read_dataset(data)
    if "PixelData" not in ds:
        return ()
    return tuple(crc32_of(f) for f in _source_frames(ds))
