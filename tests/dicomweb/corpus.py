"""The DICOMweb read tests' data: what is stored, how, and the pixels each instance must give.

Three patients. Patients A and B were sent through dicomgate (STOW-RS: stored HTJ2K); patient
C was stored straight into Orthanc in other encodings (native little and big endian, JPEG
2000 lossless, HTJ2K RPCL, HTJ2K split in several fragments per frame without offset table),
as an archive migrated from elsewhere holds them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import generate_uid

from dicomgate.codec.transcode import TranscodeOptions, transcode
from tests.builders import make_dataset, to_bytes, to_htj2k

HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
HTJ2K_RPCL = "1.2.840.10008.1.2.4.202"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
BIG_ENDIAN = "1.2.840.10008.1.2.2"


@dataclass
class Item:
    """One stored instance: its UIDs, stored syntax and the pixels of each frame."""

    name: str
    dataset: Dataset  # as sent (its pixel_array is the truth)
    stored_syntax: str
    patient_id: str = ""
    orthanc_id: str = ""

    @property
    def study(self) -> str:
        return str(self.dataset.StudyInstanceUID)

    @property
    def series(self) -> str:
        return str(self.dataset.SeriesInstanceUID)

    @property
    def sop(self) -> str:
        return str(self.dataset.SOPInstanceUID)

    @property
    def frames(self) -> int:
        return int(self.dataset.get("NumberOfFrames", 1) or 1)

    def frame(self, number: int) -> np.ndarray:
        """Frame ``number`` (1-based) as pydicom decodes the source (colour as RGB)."""
        arr = self.dataset.pixel_array
        return arr[number - 1] if self.frames > 1 else arr

    def path(self, base: str) -> str:
        return f"{base}/studies/{self.study}/series/{self.series}/instances/{self.sop}"


@dataclass
class Corpus:
    items: dict[str, Item] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Item:
        return self.items[name]


def _identify(ds: Dataset, *, patient: tuple[str, str], study: str, series: str) -> Dataset:
    ds.PatientID, ds.PatientName = patient
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def _noise(shape: tuple[int, ...], seed: int, low: int, high: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(low, high, size=shape)


PATIENT_A = ("PAT-A", "Doe^Jane")
PATIENT_B = ("pat-b", "DOE^JOHN")
PATIENT_C = ("PAT-C", "Roe^Richard")


def sent_through_dicomgate(pydicom_data: Path) -> dict[str, Dataset]:
    """What STOW-RS stores (as HTJ2K): a CT series, an RGB image, a multi-frame MR, one more
    patient's CT."""
    study_a1, study_a2, study_b1 = generate_uid(), generate_uid(), generate_uid()
    ct_series = generate_uid()
    # Every instance of A1 carries the same study attributes, as a modality's would: Orthanc
    # keeps a study's main tags from whichever instance it stores first, and ingest stores a
    # request's files in no promised order.
    study_a1_attributes = {
        "StudyDate": "20240110",
        "StudyTime": "101500",
        "AccessionNumber": "ACC-A1",
        "StudyDescription": "CT CHEST",
        "ReferringPhysicianName": "House^Greg",
        "InstitutionName": "General Hospital",
        "PatientBirthDate": "19700101",
        "PatientSex": "F",
    }
    out: dict[str, Dataset] = {}
    for number in (1, 2, 3):
        out[f"ct{number}"] = make_dataset(
            rows=32,
            columns=40,
            bits_stored=12,
            signed=True,
            patient_id=PATIENT_A[0],
            patient_name=PATIENT_A[1],
            study_uid=study_a1,
            series_uid=ct_series,
            instance_number=number,
            pixels=_noise((32, 40), number, -2048, 2047),
            **study_a1_attributes,
            RescaleIntercept=-1024,
            RescaleSlope=1,
            WindowCenter=40,
            WindowWidth=400,
        )
    rgb = pydicom.dcmread(pydicom_data / "SC_rgb.dcm")
    out["rgb"] = _identify(rgb, patient=PATIENT_A, study=study_a1, series=generate_uid())
    for keyword, value in study_a1_attributes.items():
        setattr(out["rgb"], keyword, value)
    mr = pydicom.dcmread(pydicom_data / "emri_small.dcm")
    out["mr"] = _identify(mr, patient=PATIENT_A, study=study_a2, series=generate_uid())
    out["mr"].StudyDate, out["mr"].AccessionNumber = "20230505", "acc-a2"
    out["b"] = make_dataset(
        rows=16,
        columns=16,
        patient_id=PATIENT_B[0],
        patient_name=PATIENT_B[1],
        study_uid=study_b1,
        pixels=_noise((16, 16), 9, 0, 4095),
        StudyDate="20240301",
        AccessionNumber="ACC-B1",
    )
    return out


def _multi_fragment_htj2k(ds: Dataset) -> bytes:
    """HTJ2K frames each split in two fragments, without offset table (PS3.5 A.4 allows it):
    what Orthanc 1.10 cannot cut frames out of."""
    encoded = to_htj2k(ds)
    frames = list(
        pydicom.encaps.generate_frames(encoded.PixelData, number_of_frames=ds.NumberOfFrames)
    )
    encoded.PixelData = encapsulate(frames, fragments_per_frame=2, has_bot=False)
    encoded["PixelData"].VR = "OB"
    encoded["PixelData"].is_undefined_length = True
    return to_bytes(encoded)


def stored_directly() -> dict[str, tuple[Dataset, bytes, str]]:
    """What goes straight into Orthanc: (source data set, stored file, stored syntax)."""
    study, series = generate_uid(), generate_uid()
    out: dict[str, tuple[Dataset, bytes, str]] = {}

    def add(name: str, source: Dataset, data: bytes | None = None) -> None:
        data = data if data is not None else to_bytes(source)
        syntax = str(pydicom.dcmread(io.BytesIO(data)).file_meta.TransferSyntaxUID)
        out[name] = (source, data, syntax)

    for name in (
        "CT_small.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_bigendian.dcm",
        "examples_palette.dcm",
    ):
        ds = _identify(
            pydicom.dcmread(get_testdata_file(name)), patient=PATIENT_C, study=study, series=series
        )
        key = {
            "CT_small.dcm": "native",
            "MR_small_jp2klossless.dcm": "j2k",
            "MR_small_bigendian.dcm": "big",
            "examples_palette.dcm": "palette",
        }[name]
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        add(key, ds, buffer.getvalue())
    rpcl_source = make_dataset(
        rows=80, columns=72, patient_id=PATIENT_C[0], patient_name=PATIENT_C[1],
        study_uid=study, series_uid=series, pixels=_noise((80, 72), 5, 0, 4095),
    )  # fmt: skip
    rpcl = transcode(to_bytes(rpcl_source), TranscodeOptions(target="htj2k-rpcl"))
    add("rpcl", rpcl_source, rpcl.data)
    fragmented_source = make_dataset(
        rows=24, columns=24, frames=2, patient_id=PATIENT_C[0], patient_name=PATIENT_C[1],
        study_uid=study, series_uid=series, pixels=_noise((2, 24, 24), 6, 0, 4095),
    )  # fmt: skip
    add("fragmented", fragmented_source, _multi_fragment_htj2k(fragmented_source))
    return out
