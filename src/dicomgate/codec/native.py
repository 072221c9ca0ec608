"""Stored pixel data → what a DICOMweb client asked for: decoded native frames, whole instances
in Explicit VR Little Endian or JPEG 2000 lossless, stored frames and bulk data values.

Pure work over bytes, run in the worker pool (no web, no DB). Decoding goes through pydicom's
pixel decoders (HTJ2K and JPEG 2000 by OpenJPEG through pylibjpeg, JPEG-LS, JPEG lossless,
RLE), colour converted to RGB as pydicom does by default (YBR_RCT/YBR_ICT are undone by the
JPEG 2000 codec itself). JPEG 2000 lossless output goes through the transcoder, which verifies
every frame bit-exact before anything is returned.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from io import BytesIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.errors import InvalidDicomError
from pydicom.pixels.utils import pixel_array
from pydicom.uid import UID, ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from dicomgate.codec.decoding import quiet_plugin_failures, undecodable
from dicomgate.codec.transcode import TranscodeOptions, transcode
from dicomgate.dicom.image import ImageGeometry, frame_count
from dicomgate.errors import FrameNotFound, InvalidDicom, NotFound, UnprocessableInput

log = logging.getLogger(__name__)
SWAP_SIZES = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def little_endian(value: bytes, vr: str) -> bytes:
    """A big endian binary value of VR ``vr`` (OW, OF, OL, OD, OV) in little endian."""
    size = SWAP_SIZES[vr]
    return np.frombuffer(value, dtype=f">u{size}").astype(f"<u{size}").tobytes()


@dataclass(frozen=True)
class PixelFacts:
    """The Image Pixel Module values frame decoding needs (PS3.3 C.7.6.3)."""

    rows: int
    columns: int
    samples_per_pixel: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric_interpretation: str
    planar_configuration: int
    number_of_frames: int


@dataclass(frozen=True)
class Encoded:
    """Bytes produced for a client and the transfer syntax they are really in."""

    data: bytes
    transfer_syntax: str


def _read(data: bytes) -> Dataset:
    try:
        return pydicom.dcmread(BytesIO(data), force=True)
    except (InvalidDicomError, EOFError, ValueError, OSError) as exc:
        raise InvalidDicom(f"The stored file cannot be read as DICOM: {exc}") from None


def _syntax(ds: Dataset) -> UID:
    meta = getattr(ds, "file_meta", None)
    return UID(
        meta.get("TransferSyntaxUID", ExplicitVRLittleEndian) if meta else ExplicitVRLittleEndian
    )


def native_bytes(arr: np.ndarray, bits_allocated: int) -> bytes:
    """Decoded pixels as native little endian Pixel Data bytes (PS3.5 §8.1.1; 1-bit packed)."""
    if bits_allocated == 1:
        return np.packbits(arr.astype(np.uint8).ravel(), bitorder="little").tobytes()
    little = arr.dtype.newbyteorder("<")
    return np.ascontiguousarray(arr, dtype=little).tobytes()


def _frame_dataset(stream: bytes, transfer_syntax: str, facts: PixelFacts) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(transfer_syntax)
    ds.Rows = facts.rows
    ds.Columns = facts.columns
    ds.SamplesPerPixel = facts.samples_per_pixel
    ds.BitsAllocated = facts.bits_allocated
    ds.BitsStored = facts.bits_stored
    ds.HighBit = facts.bits_stored - 1
    ds.PixelRepresentation = facts.pixel_representation
    ds.PhotometricInterpretation = facts.photometric_interpretation or "MONOCHROME2"
    if facts.samples_per_pixel > 1:
        ds.PlanarConfiguration = facts.planar_configuration
    ds.NumberOfFrames = 1
    ds.PixelData = encapsulate([stream])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return ds


def _decode(ds: Dataset, index: int | None) -> np.ndarray:
    try:
        with quiet_plugin_failures():
            return pixel_array(ds, index=index)
    except (NotImplementedError, RuntimeError, ValueError, TypeError, AttributeError) as exc:
        log.info("Decoding for DICOMweb failed: %s", exc)
        raise undecodable(ds) from None


def decode_frame_task(stream: bytes, transfer_syntax: str, facts: PixelFacts) -> bytes:
    """One stored (compressed) frame → native little endian bytes."""
    arr = _decode(_frame_dataset(stream, transfer_syntax, facts), None)
    return native_bytes(arr, facts.bits_allocated)


def _frame_index(ds: Dataset, index: int) -> None:
    frames = frame_count(ds)
    if not 0 <= index < frames:
        raise FrameNotFound(f"Frame {index + 1} does not exist; the instance has {frames} frame(s)")


def stored_frame_task(data: bytes, index: int) -> bytes:
    """One frame of a stored file as stored (Orthanc could not cut it out: several fragments
    per frame without offset table): pydicom finds the frame boundaries."""
    ds = _read(data)
    if "PixelData" not in ds:
        raise NotFound("The instance has no pixel data")
    _frame_index(ds, index)
    if not _syntax(ds).is_encapsulated:
        raise UnprocessableInput("Native pixel data has no stored frames to cut out")
    for number, frame in enumerate(generate_frames(ds.PixelData, number_of_frames=frame_count(ds))):
        if number == index:
            return frame
    raise FrameNotFound(f"Frame {index + 1} cannot be found in the stored pixel data")


def decoded_frame_task(data: bytes, index: int, max_pixels: int) -> bytes:
    """One frame of a stored file (any syntax pydicom decodes, big endian too) → native LE."""
    ds = _read(data)
    if "PixelData" not in ds:
        raise NotFound("The instance has no pixel data")
    ImageGeometry.of(ds).check_budget(max_pixels=max_pixels)
    _frame_index(ds, index)
    arr = _decode(ds, index if frame_count(ds) > 1 else None)
    return native_bytes(arr, int(ds.BitsAllocated))


def _native_dataset(data: bytes, max_pixels: int) -> Dataset:
    ds = _read(data)
    if "PixelData" in ds and _syntax(ds).is_encapsulated:
        ImageGeometry.of(ds).check_budget(max_pixels=max_pixels)
        try:
            # → Explicit VR Little Endian, YBR → RGB, planar configuration 0; the same instance
            with quiet_plugin_failures():
                ds.decompress(generate_instance_uid=False)
        except (NotImplementedError, RuntimeError, ValueError, TypeError, AttributeError) as exc:
            log.info("Decoding for DICOMweb failed: %s", exc)
            raise undecodable(ds) from None
    return ds


def _explicit_little(ds: Dataset) -> bytes:
    """A Part 10 file in Explicit VR Little Endian. pydicom re-encodes parsed values; the raw
    binary values of a big endian data set (OW, OF, …) are byte-swapped here (PS3.5 §7.3)."""
    if not _syntax(ds).is_little_endian:
        for element in ds.iterall():
            if element.VR in SWAP_SIZES and isinstance(element.value, bytes):
                element.value = little_endian(element.value, element.VR)
    out = BytesIO()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    pydicom.dcmwrite(out, ds, implicit_vr=False, little_endian=True, enforce_file_format=True)
    return out.getvalue()


def native_instance_task(data: bytes, max_pixels: int) -> Encoded:
    """A stored instance as a Part 10 file in Explicit VR Little Endian (pixels decoded)."""
    return Encoded(_explicit_little(_native_dataset(data, max_pixels)), ExplicitVRLittleEndian)


def _to_jpeg2000(native: bytes, *, max_pixels: int) -> Encoded:
    result = transcode(native, TranscodeOptions(target="jpeg2000", max_pixels=max_pixels))
    return Encoded(result.data, result.transfer_syntax)


def jpeg2000_instance_task(data: bytes, max_pixels: int) -> Encoded:
    """A stored instance re-encoded JPEG 2000 lossless (1.2.840.10008.1.2.4.90), verified by the
    transcoder; objects it passes through (no pixels, float, …) stay Explicit VR Little Endian
    and say so."""
    return _to_jpeg2000(native_instance_task(data, max_pixels).data, max_pixels=max_pixels)


def jpeg2000_frame_task(stream: bytes, transfer_syntax: str, facts: PixelFacts) -> bytes:
    """One stored frame → a JPEG 2000 lossless codestream, made by the transcoder from a
    one-frame native instance (so the round trip is verified bit-exact)."""
    ds = _frame_dataset(stream, transfer_syntax, facts)
    native = stream if transfer_syntax == ExplicitVRLittleEndian else None
    ds.PixelData = native or native_bytes(_decode(ds, None), facts.bits_allocated)
    ds["PixelData"].VR = "OW" if facts.bits_allocated > 8 else "OB"
    ds["PixelData"].is_undefined_length = False
    if facts.samples_per_pixel > 1:
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = generate_uid()
    budget = facts.rows * facts.columns * facts.samples_per_pixel
    result = _to_jpeg2000(_explicit_little(ds), max_pixels=budget)
    if not UID(result.transfer_syntax).is_encapsulated:
        raise UnprocessableInput("This frame cannot be encoded as JPEG 2000 lossless")
    return next(generate_frames(_read(result.data).PixelData, number_of_frames=1))


def bulk_value_task(data: bytes, path: tuple[int, ...]) -> bytes:
    """The value of the element at ``path`` (tag, item index, tag, …) as stored (PS3.18 §F.2.6).

    Binary values of a big endian file are returned little endian, as bulk data is defined.
    """
    ds = _read(data)
    level: Dataset = ds
    for position in range(0, len(path) - 1, 2):
        tag, index = path[position], path[position + 1]
        element = level.get(tag)
        if element is None or element.VR != "SQ" or not 0 <= index < len(element.value):
            raise NotFound(f"No item {index} of a sequence {tag:08X} in this instance")
        level = element.value[index]
    tag = path[-1]
    if tag not in level:
        raise NotFound(f"No element {tag:08X} in this instance")
    raw = level.get_item(tag)
    vr = getattr(raw, "VR", None) or level[tag].VR
    value = raw.value if raw is not None else None
    if value is None:
        return b""
    if not isinstance(value, bytes):
        value = level[tag].value
        value = value if isinstance(value, bytes) else str(value).encode()
    if not _syntax(ds).is_little_endian and vr in SWAP_SIZES:
        value = little_endian(value, vr)
    return value
