"""Orthanc's tag JSON → DICOM JSON (PS3.18 Annex F), checked against pydicom's own encoder of
the stored file, and the VR rules Orthanc's JSON leaves to dicomgate."""

from __future__ import annotations

import io
import math
from typing import Any

import httpx
import pydicom
import pytest

from dicomgate.dicomweb.dicomjson import complete_bulk_uris, element_json, to_dicom_json
from tests.dicomweb.corpus import Corpus
from tests.dicomweb.reads import ReadServer


def _same(mine: Any, theirs: Any) -> bool:
    if isinstance(mine, float) or isinstance(theirs, float):
        return math.isclose(float(mine), float(theirs), rel_tol=1e-12)
    return bool(mine == theirs)


def differences(mine: dict[str, Any], theirs: dict[str, Any], path: str = "") -> list[str]:
    """Elements whose VR or value differ (bulk data and pydicom's padding element aside)."""
    out = []
    for tag in sorted(set(mine) | set(theirs)):
        if tag.startswith("0002") or tag in ("00083002", "FFFCFFFC"):
            continue
        a, b = mine.get(tag), theirs.get(tag)
        if a is None or b is None:
            out.append(f"{path}{tag} missing {'here' if a is None else 'in pydicom'}")
            continue
        if "BulkDataURI" in a:
            if "Value" in b and b["vr"] not in ("OB", "OW", "UN"):
                out.append(f"{path}{tag} bulk here, value in pydicom")
            continue
        if a["vr"] != b["vr"]:
            out.append(f"{path}{tag} VR {a['vr']} != {b['vr']}")
        if a["vr"] == "SQ":
            for index, (x, y) in enumerate(
                zip(a.get("Value", []), b.get("Value", []), strict=True)
            ):
                out += differences(x, y, f"{path}{tag}/{index}/")
            continue
        # PS3.18 §F.2.5: an empty value among several is null (pydicom writes "").
        theirs_values = [None if v == "" else v for v in b.get("Value", [])]
        ours = a.get("Value", [])
        if len(ours) != len(theirs_values) or not all(
            _same(x, y) for x, y in zip(ours, theirs_values, strict=True)
        ):
            out.append(f"{path}{tag} {ours!r} != {theirs_values!r}")
    return out


@pytest.mark.parametrize("name", ["ct1", "rgb", "mr", "native", "big", "palette", "j2k"])
def test_metadata_is_what_pydicom_encodes_of_the_stored_file(
    read_server: ReadServer, corpus: Corpus, name: str
) -> None:
    orthanc = read_server.orthanc.url
    item = corpus[name]
    stored = httpx.get(f"{orthanc}/instances/{item.orthanc_id}/file").content

    mine = read_server.client("dicom:read").retrieve_instance_metadata(
        item.study, item.series, item.sop
    )
    theirs = pydicom.dcmread(io.BytesIO(stored)).to_json_dict(bulk_data_threshold=10**9)

    # Every value as pydicom reads it, with the file's VR; long texts Orthanc shortens are
    # asked for again whole; binary values are BulkDataURIs.
    assert differences(mine, theirs) == []
    assert mine["7FE00010"]["BulkDataURI"] == item.path(read_server.dicomweb) + "/bulk/7FE00010"
    assert mine["00020010"] == {"vr": "UI", "Value": [item.stored_syntax]}


class TestVrRules:
    def test_ambiguous_vrs_follow_the_data_set(self) -> None:
        def tags(pixel_representation: str) -> dict[str, Any]:
            return {
                "0028,0103": {"Type": "String", "Value": pixel_representation},
                "0028,0106": {"Type": "String", "Value": "65535"},  # Smallest Image Pixel Value
                "0028,3002": {"Type": "String", "Value": "256\\0\\16"},  # LUT Descriptor
                "7fe0,0010": {"Type": "Null", "Value": None},
            }

        unsigned = to_dicom_json(
            tags("0"), transfer_syntax="1.2.840.10008.1.2.1", encapsulated=False
        )
        signed = to_dicom_json(
            tags("1"), transfer_syntax="1.2.840.10008.1.2.4.201", encapsulated=True
        )

        assert unsigned["00280106"] == {"vr": "US", "Value": [65535]}
        assert signed["00280106"]["vr"] == "SS"
        assert signed["00283002"] == {"vr": "US", "Value": [256, 0, 16]}  # always US
        assert unsigned["7FE00010"]["vr"] == "OW" and signed["7FE00010"]["vr"] == "OB"

    def test_values_unknown_private_tags_and_bulk(self) -> None:
        tags = {
            "0009,0010": {"Type": "String", "Value": "ACME 1.0"},
            "0009,1001": {"Type": "String", "Value": "912"},  # VR unknown: from the file
            "0018,1020": {"Type": "TooLong", "Value": None},
            "0008,0008": {"Type": "String", "Value": "ORIGINAL\\\\AXIAL"},
            "0010,0010": {"Type": "String", "Value": "Yamada^Tarou=山田^太郎=やまだ^たろう"},
            "0020,0032": {"Type": "String", "Value": "-125.5\\0\\1e2"},
            "0020,0013": {"Type": "String", "Value": " 7 "},
            "0008,1140": {
                "Type": "Sequence",
                "Value": [{"0008,1155": {"Type": "String", "Value": "1.2.3"}}],
            },
            "0008,0014": {"Type": "String", "Value": ""},
        }  # fmt: skip

        out = to_dicom_json(tags, transfer_syntax="", encapsulated=False)

        assert out["00090010"] == {"vr": "LO", "Value": ["ACME 1.0"]}
        assert out["00091001"] == {"vr": "UN", "BulkDataURI": "\u0000/bulk/00091001"}
        assert out["00181020"] == {"vr": "LO", "BulkDataURI": "\u0000/bulk/00181020"}
        assert out["00080008"] == {"vr": "CS", "Value": ["ORIGINAL", None, "AXIAL"]}
        assert out["00100010"]["Value"] == [
            {"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"}
        ]
        assert out["00200032"] == {"vr": "DS", "Value": [-125.5, 0.0, 100.0]}
        assert out["00200013"] == {"vr": "IS", "Value": [7]}
        assert out["00081140"] == {
            "vr": "SQ",
            "Value": [{"00081155": {"vr": "UI", "Value": ["1.2.3"]}}],
        }
        assert out["00080014"] == {"vr": "UI"}  # present, empty (PS3.18 §F.2.5)

    def test_bulk_uris_are_completed_with_the_instance_url(self) -> None:
        cached = b'{"7FE00010":{"vr":"OB","BulkDataURI":"\\u0000/bulk/7FE00010"}}'

        assert complete_bulk_uris(cached, "https://h/dicomweb/studies/1/series/2/instances/3") == (
            b'{"7FE00010":{"vr":"OB","BulkDataURI":'
            b'"https://h/dicomweb/studies/1/series/2/instances/3/bulk/7FE00010"}}'
        )

    def test_text_values_of_main_tags(self) -> None:
        assert element_json(0x00100010, "Doe^Jane") == {
            "vr": "PN",
            "Value": [{"Alphabetic": "Doe^Jane"}],
        }
        assert element_json(0x00201208, "300") == {"vr": "IS", "Value": [300]}
        assert element_json(0x00080050, "") == {"vr": "SH"}
        assert element_json(0x7FE00010, "x") is None
