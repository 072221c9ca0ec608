"""HTJ2K Lossless RPCL (…4.202): the label is earned by each codestream, never assumed.

PS3.5 §10.18 (and §A.4.4) asks three things of an HTJ2K Lossless RPCL codestream, beyond being
reversible: RPCL progression order (lower resolutions first), enough wavelet decompositions that
the lowest resolution is at most 64 pixels (a thumbnail can be read first), and TLM markers
(tile-part lengths, so a reader finds the resolution breakpoints). dicomgate reads the stricter
"width and height ≤ 64" where the standard says "width or height".

The encoder is asked for what it takes (:mod:`.htj2k`: reversible, the levels, TLM, one tile-part
per resolution), but imagecodecs' ``htj2k_encode`` has no progression-order parameter (its
OpenJPH wrapper leaves it at OpenJPH's default, RPCL). So every frame's main header is read here
(ISO/IEC 15444-1 Annex A) before the output is labelled …4.202; a codestream that does not meet
the rules is still a verified lossless HTJ2K codestream, and the instance is labelled …4.201.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from dicomgate.codec.capabilities import HTJ2K_LOSSLESS, HTJ2K_LOSSLESS_RPCL
from dicomgate.codec.plan import MIN_LOWEST_RESOLUTION, EncodePlan

log = logging.getLogger(__name__)

# ISO/IEC 15444-1 Table A.2: the markers read here.
SOC, SIZ, COD, COC, TLM, POC, SOT = 0xFF4F, 0xFF51, 0xFF52, 0xFF53, 0xFF55, 0xFF5F, 0xFF90
RPCL = 2  # Table A.16: progression order 2 = resolution-position-component-layer
REVERSIBLE_5_3 = 1  # Table A.20: wavelet transformation 1 = 5-3 reversible


@dataclass(frozen=True)
class MainHeader:
    """What a codestream's main header says about its layout (ISO/IEC 15444-1 §A.5, §A.6)."""

    width: int  # Xsiz − XOsiz
    height: int  # Ysiz − YOsiz
    x_offset: int
    y_offset: int
    progression: int  # COD SGcod
    levels: int  # COD SPcod: number of decomposition levels
    transformation: int  # COD SPcod: 0 = 9-7 irreversible, 1 = 5-3 reversible
    markers: frozenset[int]  # every marker of the main header


def read_main_header(stream: bytes) -> MainHeader:
    """Walk the main header from SOC to the first SOT (ValueError when it is malformed)."""
    if stream[:2] != SOC.to_bytes(2, "big"):
        raise ValueError("no SOC marker")
    pos, markers = 2, set()
    siz: tuple[int, int, int, int] | None = None
    cod: tuple[int, int, int] | None = None
    while True:
        marker = int.from_bytes(stream[pos : pos + 2], "big")
        if marker == SOT:
            break
        if pos + 4 > len(stream):
            raise ValueError("the main header ends before the first tile-part")
        length = int.from_bytes(stream[pos + 2 : pos + 4], "big")
        body = stream[pos + 4 : pos + 2 + length]
        if length < 2 or len(body) != length - 2:
            raise ValueError(f"marker {marker:04X} has a bad length")
        markers.add(marker)
        if marker == SIZ and len(body) >= 18:
            xsiz, ysiz, xosiz, yosiz = (
                int.from_bytes(body[i : i + 4], "big") for i in range(2, 18, 4)
            )
            siz = (xsiz - xosiz, ysiz - yosiz, xosiz, yosiz)
        elif marker == COD and len(body) >= 10:
            cod = (body[1], body[5], body[9])  # SGcod progression; SPcod levels, transformation
        pos += 2 + length
    if siz is None or cod is None:
        raise ValueError("no SIZ or COD marker segment")
    width, height, x_offset, y_offset = siz
    progression, levels, transformation = cod
    return MainHeader(
        width, height, x_offset, y_offset, progression, levels, transformation, frozenset(markers)
    )


def _lowest(size: int, offset: int, levels: int) -> int:
    """Samples of the lowest resolution along one axis (ISO/IEC 15444-1 equation B-14)."""
    step = 1 << levels
    return -(-(offset + size) // step) - -(-offset // step)


def rpcl_problems(stream: bytes) -> list[str]:
    """What keeps one codestream from the HTJ2K Lossless RPCL rules (PS3.5 §10.18); [] if none."""
    try:
        header = read_main_header(stream)
    except ValueError as exc:
        return [f"its main header cannot be read: {exc}"]
    problems = []
    if header.transformation != REVERSIBLE_5_3:
        problems.append("not the reversible 5-3 wavelet")
    if header.progression != RPCL:
        problems.append(f"progression order {header.progression}, not RPCL ({RPCL})")
    if POC in header.markers:
        problems.append("a POC marker changes the progression order")
    if COC in header.markers:
        problems.append("a COC marker sets other levels for a component")
    lowest = (
        _lowest(header.width, header.x_offset, header.levels),
        _lowest(header.height, header.y_offset, header.levels),
    )
    if max(lowest) > MIN_LOWEST_RESOLUTION:
        problems.append(
            f"{header.levels} decomposition levels leave a {lowest[0]}×{lowest[1]} lowest "
            f"resolution (at most {MIN_LOWEST_RESOLUTION})"
        )
    if TLM not in header.markers:
        problems.append("no TLM marker")
    return problems


def confirm_rpcl(plan: EncodePlan, streams: list[bytes]) -> EncodePlan:
    """The plan to label the output with: …4.202 only when every codestream meets the rules,
    otherwise …4.201 (logged with what was found). Other targets are returned as they are."""
    if plan.transfer_syntax != HTJ2K_LOSSLESS_RPCL:
        return plan
    for frame, stream in enumerate(streams, start=1):
        problems = rpcl_problems(stream)
        if problems:
            log.warning(
                "HTJ2K frame %d does not meet the RPCL rules (PS3.5 §10.18): %s; labelled %s "
                "instead of %s",
                frame,
                "; ".join(problems),
                HTJ2K_LOSSLESS,
                HTJ2K_LOSSLESS_RPCL,
            )
            return replace(plan, transfer_syntax=HTJ2K_LOSSLESS)
    return plan
