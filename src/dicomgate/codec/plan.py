"""How one image is encoded: the backend, the target syntax, the step, the wavelet levels."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from dicomgate.codec.capabilities import HTJ2K, codec_status
from dicomgate.codec.lossy import lossy_step
from dicomgate.codec.reasons import PassThrough, PassThroughReason
from dicomgate.dicom.image import ImageGeometry

log = logging.getLogger(__name__)

Encoder = Literal["htj2k", "jpeg2000"]
# HTJ2K Lossless RPCL: enough decompositions that the lowest resolution is ≤ 64 pixels wide
# and high (PS3.5 §10.18); dicomgate writes that many for every target.
MIN_LOWEST_RESOLUTION = 64


@dataclass(frozen=True)
class EncodePlan:
    """What every frame of one image is encoded with."""

    encoder: Encoder
    transfer_syntax: str
    lossy_step: float | None
    colour_transform: bool
    stored: int
    signed: bool
    levels: int

    @property
    def lossless(self) -> bool:
        return self.lossy_step is None


def decomposition_levels(rows: int, cols: int) -> int:
    """Enough wavelet levels that the lowest resolution is ≤ 64 pixels (at least 5)."""
    levels, side = 0, max(rows, cols)
    while side > MIN_LOWEST_RESOLUTION:
        side = (side + 1) // 2
        levels += 1
    return max(levels, 5)


def make_plan(
    geometry: ImageGeometry,
    photometric: str,
    *,
    target: str,
    lossy_quality: float | None,
    force_fallback: bool,
) -> EncodePlan:
    """The plan for one image, or PassThrough(codec_refused) when no encoder can do it."""
    status = codec_status(target, force_fallback=force_fallback)
    if not status.available:
        raise PassThrough(PassThroughReason.CODEC_REFUSED, "no lossless encoder available")
    # A JPEG 2000 lossless source labelled YBR_RCT decodes to RGB (the codec undoes the RCT).
    colour = geometry.samples == 3 and photometric in ("RGB", "YBR_RCT")
    levels = decomposition_levels(geometry.rows, geometry.columns)
    if lossy_quality is not None:
        if status.encoder != "htj2k":
            raise PassThrough(PassThroughReason.CODEC_REFUSED, "lossy mode needs the HTJ2K encoder")
        # The step is relative to the container's range (8/16 bits): scale it to Bits Stored.
        step = lossy_step(lossy_quality) * 2.0 ** (geometry.bits_stored - geometry.bits_allocated)
        return EncodePlan(
            "htj2k", HTJ2K, step, colour, geometry.bits_stored, geometry.signed, levels
        )
    if status.fallback:
        log.warning("HTJ2K encoding unavailable: falling back to JPEG 2000 lossless")
    encoder: Encoder = "jpeg2000" if status.encoder == "jpeg2000" else "htj2k"
    return EncodePlan(
        encoder,
        status.transfer_syntax,
        None,
        colour,
        geometry.bits_stored,
        geometry.signed,
        levels,
    )
