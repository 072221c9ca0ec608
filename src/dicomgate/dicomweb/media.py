"""Content negotiation for DICOMweb retrievals (PS3.18 §8.7), decided per stored instance.

Pure logic: the Accept header (or the ``accept`` query parameter of §8.3.3.1, which replaces
it) becomes a list of media ranges; each resource kind offers candidate representations built
from the instance's stored transfer syntax; the best acceptable candidate wins, or
``NotAcceptable`` (406) names every representation that could have been served.

Media types and their default transfer syntaxes follow PS3.18 Tables 8.7.3-2 to 8.7.3-5:
``application/dicom`` and ``application/octet-stream`` default to Explicit VR Little Endian
(1.2.840.10008.1.2.1); ``image/jphc`` (``image/jhc``, Cornerstone3D's spelling) carries HTJ2K,
``image/jp2`` JPEG 2000.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from python_multipart.multipart import parse_options_header

from dicomgate.codec.capabilities import JPEG2000_LOSSLESS
from dicomgate.codec.profiles import HTJ2K_SYNTAXES, NATIVE_SYNTAXES
from dicomgate.errors import NotAcceptable

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
BIG_ENDIAN = "1.2.840.10008.1.2.2"
JPEG2000 = "1.2.840.10008.1.2.4.91"
NATIVE = NATIVE_SYNTAXES
# Native pixel data Orthanc hands out as little endian bytes (``/frames/{n}/raw``).
LITTLE_ENDIAN_NATIVE = NATIVE - {BIG_ENDIAN}

DICOM = "application/dicom"
OCTET = "application/octet-stream"
JPHC = "image/jphc"
JHC = "image/jhc"  # the spelling Cornerstone3D sends for HTJ2K frames
JP2 = "image/jp2"
DICOM_JSON = "application/dicom+json"
PNG = "image/png"
JPEG = "image/jpeg"
ALIASES = {JHC: JPHC}
RESOURCE_DEFAULT_TYPES = frozenset({DICOM, OCTET})

# The natural media type of a compressed frame, by stored transfer syntax (PS3.18 Table
# 8.7.3-5); native pixel data is application/octet-stream.
FRAME_MEDIA_TYPES: dict[str, str] = {
    "1.2.840.10008.1.2.5": "image/dicom-rle",
    "1.2.840.10008.1.2.4.50": JPEG,
    "1.2.840.10008.1.2.4.51": JPEG,
    "1.2.840.10008.1.2.4.57": "image/jll",
    "1.2.840.10008.1.2.4.70": "image/jll",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    JPEG2000_LOSSLESS: JP2,
    JPEG2000: JP2,
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    **dict.fromkeys(HTJ2K_SYNTAXES, JPHC),
}


@dataclass(frozen=True)
class MediaRange:
    """One acceptable media range: ``type`` is the (part) media type, possibly a wildcard."""

    type: str
    multipart: bool | None  # None: a bare wildcard (*/*), either form
    transfer_syntax: str | None
    quality: float
    order: int
    asked: str = ""  # the type as the client spelled it (image/jhc for image/jphc)

    @property
    def specificity(self) -> int:
        """RFC 9110 §12.5.1: concrete types before ``image/*`` before ``*/*``."""
        if self.type == "*/*":
            return 0
        return 1 if self.type.endswith("/*") else 2


@dataclass(frozen=True)
class Representation:
    """What dicomgate can send: ``media_type`` of the body or of each part, the payload's real
    transfer syntax, and whether the stored bytes go out untouched."""

    media_type: str
    transfer_syntax: str
    multipart: bool
    as_stored: bool

    @property
    def content_type(self) -> str:
        """The body's (single part) or each part's Content-Type, naming the transfer syntax."""
        return f"{self.media_type}; transfer-syntax={self.transfer_syntax}"

    def describe(self) -> str:
        """How a 406 names this representation."""
        text = (
            f'multipart/related; type="{self.media_type}"; transfer-syntax={self.transfer_syntax}'
            if self.multipart
            else self.content_type
        )
        return text + (" (as stored)" if self.as_stored else "")


def _split_items(value: str) -> list[str]:
    """Split an Accept value on commas outside quoted strings."""
    items: list[str] = []
    current: list[str] = []
    quoted = False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [i.strip() for i in items if i.strip()]


def _param(params: dict[bytes, bytes], name: bytes) -> str | None:
    value = params.get(name)
    return None if value is None else value.decode("latin-1").strip().strip('"').strip()


def parse_accept(value: str | None, *, from_query: bool = False) -> list[MediaRange]:
    """The media ranges of an Accept value; absent or empty means ``*/*``.

    ``from_query``: the value came from the ``accept`` query parameter, where a ``+`` that was
    not percent-encoded arrives as a space (``application/dicom json``).
    """
    if not value or not value.strip():
        return [MediaRange("*/*", None, None, 1.0, 0)]
    ranges: list[MediaRange] = []
    for order, item in enumerate(_split_items(value)):
        if not item.isascii():  # media types and their parameters are ASCII (RFC 9110 §5.6.2)
            continue
        head, _, rest = item.partition(";")
        if from_query:
            head = head.strip().replace(" ", "+")
        kind, params = parse_options_header(f"{head.strip()};{rest}")
        media = kind.decode("latin-1").strip().lower()
        try:
            quality = float(_param(params, b"q") or "1")
        except ValueError:
            quality = 1.0
        syntax = _param(params, b"transfer-syntax") or None
        if media == "multipart/related":
            inner = (_param(params, b"type") or "").lower()
            ranges.append(
                MediaRange(ALIASES.get(inner, inner), True, syntax, quality, order, inner)
            )
        elif media:
            multipart = None if media == "*/*" else False
            ranges.append(
                MediaRange(ALIASES.get(media, media), multipart, syntax, quality, order, media)
            )
    return ranges


def _type_matches(wanted: str, offered: str) -> bool:
    if wanted in ("*/*", "*", ""):
        return True
    if wanted.endswith("/*"):
        return offered.split("/", 1)[0] == wanted[:-2]
    return wanted == offered


def default_syntax(media_type: str) -> str | None:
    """The transfer syntax a media type means when the range names none (PS3.18 §8.7.3.5.2).

    ``None``: any of the type's syntaxes (image/jphc → any stored HTJ2K, as stored).
    """
    if media_type in (DICOM, OCTET):
        return EXPLICIT_LE
    if media_type == JP2:
        return JPEG2000_LOSSLESS
    return None


def _syntax_matches(media: MediaRange, rep: Representation) -> bool:
    wanted = media.transfer_syntax
    if wanted == "*":
        return True  # any syntax: candidates come as stored first, so stored bytes win
    if wanted is not None:
        return wanted == rep.transfer_syntax
    if media.type == "*/*" and rep.media_type not in RESOURCE_DEFAULT_TYPES:
        return False  # */* alone means the resource's default media type (PS3.18 §8.7.3.5)
    default = default_syntax(rep.media_type)
    return default is None or default == rep.transfer_syntax


def matches(media: MediaRange, rep: Representation, *, default_multipart: bool) -> bool:
    """Whether ``rep`` satisfies one media range."""
    if media.quality <= 0 or not _type_matches(media.type, rep.media_type):
        return False
    multipart = default_multipart if media.multipart is None else media.multipart
    return multipart == rep.multipart and _syntax_matches(media, rep)


def choose(
    ranges: Sequence[MediaRange],
    candidates: Sequence[Representation],
    *,
    default_multipart: bool,
    what: str,
) -> tuple[Representation, MediaRange]:
    """The best candidate for the most preferred range that any candidate satisfies.

    Candidates are in dicomgate's order of preference (as stored first). Raises
    ``NotAcceptable`` naming every candidate when nothing acceptable can be served.
    """
    ordered = sorted(ranges, key=lambda r: (-r.quality, -r.specificity, r.order))
    for media in ordered:
        for rep in candidates:
            if matches(media, rep, default_multipart=default_multipart):
                return rep, media
    offered = "; ".join(rep.describe() for rep in candidates) or "nothing"
    raise NotAcceptable(
        f"{what} cannot be served in any media type the request accepts; "
        f"it can be served as: {offered}"
    )


def part_media_type(media: MediaRange, rep: Representation) -> str:
    """The media type to label the body or parts with: the concrete type asked for (keeping
    Cornerstone3D's ``image/jhc`` spelling), else the representation's natural type."""
    return rep.media_type if media.type.endswith("*") else media.asked or media.type


def frame_candidates(stored: str, *, decodable: bool = True) -> list[Representation]:
    """Frames (and encapsulated Pixel Data bulk data) of an instance stored in ``stored``.

    Multipart and single part variants of: the stored codestream (natural media type, and
    application/octet-stream labelled with the stored syntax), decoded native little endian,
    and JPEG 2000 lossless transcoded in the worker pool.
    """
    out: list[Representation] = []
    for multipart in (True, False):
        if stored in LITTLE_ENDIAN_NATIVE:
            out.append(Representation(OCTET, EXPLICIT_LE, multipart, True))
        elif stored not in NATIVE:
            natural = FRAME_MEDIA_TYPES.get(stored, OCTET)
            out.append(Representation(natural, stored, multipart, True))
            if natural != OCTET:
                out.append(Representation(OCTET, stored, multipart, True))
        if decodable:
            if stored not in LITTLE_ENDIAN_NATIVE:
                out.append(Representation(OCTET, EXPLICIT_LE, multipart, False))
            if stored != JPEG2000_LOSSLESS:
                out.append(Representation(JP2, JPEG2000_LOSSLESS, multipart, False))
    return out


def instance_candidates(stored: str, *, single_part: bool) -> list[Representation]:
    """Whole instances (PS3.18 §10.4.1.1.1): as stored, Explicit VR Little Endian, JPEG 2000
    lossless; single part only for one instance (``/instances/{uid}``)."""
    out: list[Representation] = []
    for multipart in (True, False) if single_part else (True,):
        out.append(Representation(DICOM, stored, multipart, True))
        if stored != EXPLICIT_LE:
            out.append(Representation(DICOM, EXPLICIT_LE, multipart, False))
        if stored != JPEG2000_LOSSLESS:
            out.append(Representation(DICOM, JPEG2000_LOSSLESS, multipart, False))
    return out


def bulk_candidates() -> list[Representation]:
    """Bulk data other than Pixel Data: the value's bytes, multipart or single part."""
    return [Representation(OCTET, EXPLICIT_LE, m, True) for m in (True, False)]


def accepts_any(ranges: Iterable[MediaRange], media_types: Iterable[str]) -> bool:
    """Whether any non-multipart range allows one of ``media_types`` (metadata, QIDO)."""
    offered = list(media_types)
    return any(
        r.quality > 0 and r.multipart is not True and any(_type_matches(r.type, m) for m in offered)
        for r in ranges
    )


def rendered_choice(ranges: Sequence[MediaRange], *, multipart: bool) -> str:
    """image/jpeg or image/png for a rendered resource (image/jpeg is PS3.18's default)."""
    candidates = [Representation(t, "", multipart, False) for t in (JPEG, PNG)]
    ordered = sorted(ranges, key=lambda r: (-r.quality, -r.specificity, r.order))
    for media in ordered:
        for rep in candidates:
            wants_multipart = multipart if media.multipart is None else media.multipart
            if (
                media.quality > 0
                and wants_multipart == multipart
                and _type_matches(media.type, rep.media_type)
            ):
                return rep.media_type
    raise NotAcceptable(
        "Rendered images are served as image/jpeg or image/png (several in a multipart/related)"
    )
