"""Small generated DICOM datasets for tests (never committed files)."""

from __future__ import annotations

import copy
from io import BytesIO
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    CTImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

SOP_CLASSES = {"CT": CTImageStorage}


def pixel_values(
    *, rows: int, columns: int, frames: int, samples: int, bits_stored: int, signed: bool
) -> np.ndarray:
    """A deterministic ramp that spans the whole stored range (frames differ)."""
    count = frames * rows * columns * samples
    if signed:
        lo, hi = -(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1
    else:
        lo, hi = 0, 2**bits_stored - 1
    ramp = np.linspace(lo, hi, num=count, dtype=np.float64).round().astype(np.int64)
    shape: tuple[int, ...] = (rows, columns) if samples == 1 else (rows, columns, samples)
    if frames > 1:
        shape = (frames, *shape)
    return ramp.reshape(shape)


def make_dataset(
    *,
    rows: int = 8,
    columns: int = 8,
    frames: int = 1,
    samples: int = 1,
    bits_allocated: int = 16,
    bits_stored: int = 12,
    signed: bool = False,
    patient_id: str = "P1",
    patient_name: str = "Doe^Jane",
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    instance_number: int | None = 1,
    modality: str = "CT",
    photometric: str | None = None,
    transfer_syntax: UID | str = ExplicitVRLittleEndian,
    pixels: np.ndarray | None = None,
    **tags: Any,
) -> Dataset:
    """A small, valid image dataset; ``tags`` set any further keyword (``SliceThickness=1.5``).

    ``pixels`` overrides the generated ramp (shape ``(frames?, rows, columns, samples?)``). The
    pixel data is native (uncompressed) in ``transfer_syntax``, which must be uncompressed.
    """
    sop_class = SOP_CLASSES.get(modality, SecondaryCaptureImageStorage)
    sop_uid = sop_uid or generate_uid()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = UID(transfer_syntax)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.PatientID = patient_id
    ds.PatientName = patient_name
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.StudyDate = "20240101"
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.Modality = modality
    if instance_number is not None:
        ds.InstanceNumber = instance_number
    ds.Rows = rows
    ds.Columns = columns
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric or ("MONOCHROME2" if samples == 1 else "RGB")
    if samples > 1:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    if frames > 1:
        ds.NumberOfFrames = frames
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    if pixels is None:
        pixels = pixel_values(
            rows=rows,
            columns=columns,
            frames=frames,
            samples=samples,
            bits_stored=bits_stored,
            signed=signed,
        )
    order = ">" if UID(transfer_syntax) == ExplicitVRBigEndian else "<"
    dtype = f"{order}{'i' if signed else 'u'}{bits_allocated // 8}"
    ds.PixelData = np.ascontiguousarray(pixels).astype(dtype).tobytes()
    return ds


def to_bytes(ds: Dataset) -> bytes:
    """The dataset as a DICOM Part 10 file (preamble + file meta)."""
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def from_bytes(data: bytes) -> Dataset:
    """Parse a Part 10 file held in memory."""
    return pydicom.dcmread(BytesIO(data))


HTJ2K_LOSSLESS = UID("1.2.840.10008.1.2.4.201")


def to_htj2k(ds: Dataset) -> Dataset:
    """A copy of a native greyscale/RGB dataset with its pixels HTJ2K-lossless encoded per frame.

    Encoded with ``imagecodecs.htj2k_encode`` (reversible), one fragment per frame, with a
    basic offset table; independent of dicomgate's own transcoder.
    """
    import imagecodecs
    from pydicom.encaps import encapsulate

    out = copy.deepcopy(ds)
    arr = ds.pixel_array
    frames = arr if int(ds.get("NumberOfFrames", 1) or 1) > 1 else arr[np.newaxis]
    fragments = [
        imagecodecs.htj2k_encode(np.ascontiguousarray(frame), reversible=True) for frame in frames
    ]
    for frame, fragment in zip(frames, fragments, strict=True):
        if not np.array_equal(imagecodecs.htj2k_decode(fragment), frame):
            raise AssertionError("HTJ2K round trip is not lossless")
    out.PixelData = encapsulate(fragments, has_bot=True)
    out["PixelData"].VR = "OB"
    out["PixelData"].is_undefined_length = True
    out.file_meta.TransferSyntaxUID = HTJ2K_LOSSLESS
    return out
