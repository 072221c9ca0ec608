"""Orthanc's tag JSON → DICOM JSON (PS3.18 Annex F), for WADO-RS metadata and QIDO-RS answers.

Pure work over parsed JSON, run in the worker pool (a 300-instance series is ~30,000 elements).
Orthanc 1.10's ``/instances/{id}/tags`` ("full" format) gives every element's value as text,
sequences nested, binary values as ``Null`` and long ones as ``TooLong``, but no VR: the VR
comes from the data dictionary (pydicom's, private dictionaries included), with PS3.5's
ambiguous VRs resolved from the data set itself (Pixel Representation, Bits Allocated). Values
are typed by VR as PS3.18 §F.2.3 requires (numbers for IS/DS/binary numbers, PN objects).
Binary values, values Orthanc did not send, and elements whose VR is unknown (private tags
of an unknown creator) get a ``BulkDataURI`` instead (§F.2.6), served from the stored file.

BulkDataURIs are written relative (``\\u0000/bulk/{path}``) and completed with the instance's
URL when the answer is sent (:func:`complete_bulk_uris`), so a converted instance can be
cached whatever the host name the client used.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydicom.datadict import dictionary_VR, private_dictionary_VR

from dicomgate.codec.native import PixelFacts

# VRs whose values are JSON strings; of those, these four have VM 1 (backslash is text).
STRING_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DT", "LO", "LT", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
)
SINGLE_VALUED_TEXT = frozenset({"LT", "ST", "UT", "UR"})
INTEGER_VRS = frozenset({"SL", "SS", "UL", "US", "SV", "UV"})
FLOAT_VRS = frozenset({"FL", "FD"})
BULK_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
# LUT descriptors are US whatever the Pixel Representation (PS3.3 C.7.6.3.1.5, C.11.1.1.1).
LUT_DESCRIPTORS = frozenset({0x00281101, 0x00281102, 0x00281103, 0x00283002})
PIXEL_DATA = 0x7FE00010
BULK_MARK = "\u0000"  # stands for the instance's URL until the answer is sent
TRANSFER_SYNTAX_UID = "00020010"
AVAILABLE_TRANSFER_SYNTAX_UID = "00083002"


@dataclass(frozen=True)
class ConvertedInstance:
    """One instance as compact DICOM JSON (relative BulkDataURIs), its pixel facts, and the
    top-level text elements Orthanc cut as ``TooLong`` (asked for again whole)."""

    json: bytes
    facts: PixelFacts | None
    too_long: tuple[str, ...] = ()


@lru_cache(maxsize=8192)
def _public_vr(tag: int) -> str | None:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return None


@lru_cache(maxsize=8192)
def _private_vr(tag: int, creator: str) -> str | None:
    try:
        return str(private_dictionary_VR(tag, creator))
    except KeyError:
        return None


@dataclass(frozen=True)
class _Context:
    """What ambiguous VRs depend on, from the data set being converted (or its parent)."""

    pixel_representation: int = 0
    bits_allocated: int = 16
    encapsulated: bool = False


def _resolve_vr(tag: int, vr: str, kind: str, context: _Context) -> str:
    """One VR for PS3.5's "US or SS", "OB or OW", "US or OW", "US or SS or OW" entries."""
    if " or " not in vr:
        return vr
    options = vr.split(" or ")
    if kind == "String" and ("US" in options or "SS" in options):
        if tag in LUT_DESCRIPTORS or "SS" not in options:
            return "US"
        return "SS" if context.pixel_representation == 1 else "US"
    if tag == PIXEL_DATA and context.encapsulated:
        return "OB"  # PS3.5 A.4
    if "OW" in options and ("OB" not in options or context.bits_allocated > 8):
        return "OW"
    return options[0]


def _vr_of(tag: int, level: dict[str, Any], kind: str, context: _Context) -> str:
    group, element = tag >> 16, tag & 0xFFFF
    if element == 0:
        return "UL"  # group length (not sent by Orthanc)
    if group % 2:  # private (PS3.5 §7.8.1)
        if 0x10 <= element <= 0xFF:
            return "LO"  # Private Creator
        creator = level.get(f"{group:04x},{element >> 8:04x}", {}).get("Value")
        vr = _private_vr(tag, str(creator)) if isinstance(creator, str) else None
    else:
        vr = _public_vr(tag)
    if vr is None or vr in ("NONE", "na"):
        return "UN"
    return _resolve_vr(tag, vr, kind, context)


def _number(text: str, vr: str) -> int | float | str | None:
    """PS3.18 §F.2.3.1: IS, DS and binary numbers as JSON numbers; text that is not a number
    (a malformed value) is kept as a string rather than lost."""
    text = text.strip()
    if not text:
        return None
    if vr in INTEGER_VRS or vr == "IS":
        try:
            return int(text)
        except ValueError:
            pass
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value):
        return text
    if vr in INTEGER_VRS or vr == "IS":
        return int(value) if value.is_integer() else text
    return value


def _person_name(text: str) -> dict[str, str] | None:
    """PS3.18 §F.2.2: a PN value as its alphabetic, ideographic and phonetic groups."""
    groups = text.split("=")
    names = dict(zip(("Alphabetic", "Ideographic", "Phonetic"), groups, strict=False))
    return {k: v for k, v in names.items() if v} or None


def _values(text: str, vr: str) -> list[Any]:
    if vr in SINGLE_VALUED_TEXT:
        stripped = text.rstrip(" \x00")
        return [stripped] if stripped else []
    items = text.split("\\")
    if vr == "PN":
        out: list[Any] = [_person_name(i.strip(" \x00")) for i in items]
    elif vr == "AT":
        out = [
            ("".join(c for c in i if c in "0123456789abcdefABCDEF").upper() or None) for i in items
        ]
    elif vr in STRING_VRS:
        out = [i.strip(" \x00") or None for i in items]
    else:
        out = [_number(i, vr) for i in items]
    return [] if all(v is None for v in out) else out


def _context(
    level: dict[str, Any], parent: _Context, transfer_syntax_encapsulated: bool
) -> _Context:
    def value(key: str) -> int | None:
        found = level.get(key, {}).get("Value")
        try:
            return int(str(found).strip()) if found is not None else None
        except ValueError:
            return None

    pixel_representation = value("0028,0103")
    bits_allocated = value("0028,0100")
    return _Context(
        pixel_representation=parent.pixel_representation
        if pixel_representation is None
        else pixel_representation,
        bits_allocated=parent.bits_allocated if bits_allocated is None else bits_allocated,
        encapsulated=transfer_syntax_encapsulated,
    )


def _convert_level(
    level: dict[str, Any], path: str, parent: _Context, encapsulated: bool
) -> dict[str, Any]:
    context = _context(level, parent, encapsulated)
    out: dict[str, Any] = {}
    for key, element in level.items():
        try:
            tag = int(key.replace(",", ""), 16)
        except ValueError:
            continue
        if tag >> 16 == 0x0002 or tag & 0xFFFF == 0:
            continue  # file meta and group lengths are not part of the data set
        kind = element.get("Type")
        vr = _vr_of(tag, level, kind, context)
        name = f"{tag:08X}"
        where = f"{path}/{name}" if path else name
        if kind == "Sequence":
            items = element.get("Value") or []
            converted = [
                _convert_level(item, f"{where}/{index}", context, False)
                for index, item in enumerate(items)
            ]
            out[name] = {"vr": "SQ", "Value": converted} if converted else {"vr": "SQ"}
        elif kind == "String" and vr not in BULK_VRS:
            values = _values(str(element.get("Value", "")), vr)
            out[name] = {"vr": vr, "Value": values} if values else {"vr": vr}
        else:  # Null (binary), TooLong, or a value whose VR is unknown: from the file
            out[name] = {"vr": vr, "BulkDataURI": f"{BULK_MARK}/bulk/{where}"}
    return out


def to_dicom_json(
    tags: dict[str, Any], *, transfer_syntax: str, encapsulated: bool
) -> dict[str, Any]:
    """One instance's Orthanc tags as a DICOM JSON object, with (0002,0010) Transfer Syntax
    UID and (0008,3002) Available Transfer Syntax UID set to the stored syntax."""
    out = _convert_level(tags, "", _Context(), encapsulated)
    if transfer_syntax:
        out[TRANSFER_SYNTAX_UID] = {"vr": "UI", "Value": [transfer_syntax]}
        out[AVAILABLE_TRANSFER_SYNTAX_UID] = {"vr": "UI", "Value": [transfer_syntax]}
    return dict(sorted(out.items()))


def _int(element: dict[str, Any] | None, default: int) -> int:
    if not element or "Value" not in element:
        return default
    value = element["Value"][0]
    return int(value) if isinstance(value, int | float) else default


def pixel_facts(instance: dict[str, Any]) -> PixelFacts | None:
    """The pixel module of a converted instance; ``None`` without Rows/Columns (no image)."""
    if "00280010" not in instance or "00280011" not in instance:
        return None
    photometric = instance.get("00280004", {}).get("Value", [""])[0] or ""
    bits_allocated = _int(instance.get("00280100"), 16)
    return PixelFacts(
        rows=_int(instance.get("00280010"), 0),
        columns=_int(instance.get("00280011"), 0),
        samples_per_pixel=_int(instance.get("00280002"), 1),
        bits_allocated=bits_allocated,
        bits_stored=_int(instance.get("00280101"), bits_allocated),
        pixel_representation=_int(instance.get("00280103"), 0),
        photometric_interpretation=str(photometric),
        planar_configuration=_int(instance.get("00280006"), 0),
        number_of_frames=max(1, _int(instance.get("00280008"), 1)),
    )


def dumps(value: Any) -> bytes:
    """Compact JSON as UTF-8 (the form cached and sent)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def convert_instance(
    tags: dict[str, Any], transfer_syntax: str, encapsulated: bool
) -> ConvertedInstance:
    """One instance: its DICOM JSON bytes and pixel facts."""
    converted = to_dicom_json(tags, transfer_syntax=transfer_syntax, encapsulated=encapsulated)
    too_long = tuple(
        key.replace(",", "-")
        for key, element in tags.items()
        if element.get("Type") == "TooLong"
        and converted.get(key.replace(",", "").upper(), {}).get("vr") not in BULK_VRS
    )
    return ConvertedInstance(json=dumps(converted), facts=pixel_facts(converted), too_long=too_long)


def convert_tags_task(
    raw: bytes, syntaxes: dict[str, tuple[str, bool]], single: bool
) -> dict[str, ConvertedInstance]:
    """Worker task: Orthanc's raw tags JSON of one instance (``single``, keyed ``""``) or of a
    series (keyed by Orthanc instance ID) → converted instances. ``syntaxes`` gives each
    instance's stored transfer syntax and whether its pixel data is encapsulated."""
    parsed = json.loads(raw)
    tagged: dict[str, Any] = {"": parsed} if single else parsed
    out: dict[str, ConvertedInstance] = {}
    for orthanc_id, tags in tagged.items():
        syntax, encapsulated = syntaxes.get(orthanc_id, ("", False))
        out[orthanc_id] = convert_instance(tags, syntax, encapsulated)
    return out


def complete_bulk_uris(data: bytes, instance_url: str) -> bytes:
    """Replace the relative BulkDataURI mark with the instance's absolute URL."""
    escaped = json.dumps(instance_url)[1:-1].encode()
    return data.replace(b'"BulkDataURI":"\\u0000', b'"BulkDataURI":"' + escaped)


def element_json(tag: int, text: str) -> dict[str, Any] | None:
    """One element from a text value (an Orthanc main tag); ``None`` for binary or unknown VRs
    and sequences, which a text value cannot carry."""
    vr = _vr_of(tag, {}, "String", _Context())
    if vr in BULK_VRS or vr == "SQ":
        return None
    values = _values(text, vr)
    return {"vr": vr, "Value": values} if values else {"vr": vr}


def vr_of_tag(tag: int) -> str:
    """The data dictionary's VR of a public tag (first choice when ambiguous), "UN" if unknown."""
    vr = _public_vr(tag)
    return "UN" if vr is None else vr.split(" or ")[0]
