"""Files that differential tests run through both sides: pydicom's corpora and generated ones.

The generated set covers what a writer or a copy can get wrong: explicit and implicit VR, big
endian, colour, multi-frame, a character set with non-ASCII text, odd-length values,
multi-valued strings and an undefined-length sequence.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from tests.builders import make_dataset, to_bytes

SITE = Path(pydicom.__file__).parent
PYDICOM_CORPORA = [SITE / "data" / "test_files", SITE.parent / "data_store" / "data"]


def pydicom_files() -> list[tuple[str, bytes]]:
    """Every file of pydicom's installed corpora, named by its path inside its corpus."""
    return [
        (str(path.relative_to(root)), path.read_bytes())
        for root in PYDICOM_CORPORA
        for path in sorted(p for p in root.rglob("*") if p.is_file())
    ]


def generated_files() -> Iterator[tuple[str, bytes]]:
    """Small generated files across encodings and layouts (see the module's docstring)."""
    item = Dataset()
    item.CodeValue, item.CodeMeaning = "T-D1100", "Head "
    for syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian):
        for samples, frames in ((1, 1), (3, 1), (1, 3)):
            ds = make_dataset(
                rows=16,
                columns=12,
                samples=samples,
                frames=frames,
                bits_allocated=8 if samples == 3 else 16,
                bits_stored=8 if samples == 3 else 12,
                transfer_syntax=syntax,
                SpecificCharacterSet="ISO_IR 100",
                InstitutionName="Hôpital ",
                ImageComments="odd" * 7,
                AnatomicRegionSequence=Sequence([item]),
                WindowCenter=["40", "400"],
            )
            ds["AnatomicRegionSequence"].is_undefined_length = True
            yield f"{syntax.name} samples={samples} frames={frames}", to_bytes(ds)


def differential_inputs() -> list[tuple[str, bytes]]:
    """pydicom's corpora, then the generated files."""
    return pydicom_files() + list(generated_files())
