"""Which encoder this machine has, and the transfer syntax UIDs dicomgate writes."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import imagecodecs
from pydicom.uid import HTJ2K as HTJ2K_UID
from pydicom.uid import HTJ2KLossless, HTJ2KLosslessRPCL, JPEG2000Lossless

log = logging.getLogger(__name__)

HTJ2K_LOSSLESS = HTJ2KLossless  # 1.2.840.10008.1.2.4.201
HTJ2K_LOSSLESS_RPCL = HTJ2KLosslessRPCL  # …4.202
HTJ2K = HTJ2K_UID  # …4.203, lossy or lossless
JPEG2000_LOSSLESS = JPEG2000Lossless  # …4.90


@dataclass(frozen=True)
class CodecStatus:
    """What the encoder on this machine can do for the configured target."""

    available: bool
    encoder: str
    transfer_syntax: str
    fallback: bool
    detail: str


def htj2k_available() -> bool:
    """True when imagecodecs was built with OpenJPH (``htj2k_encode``/``htj2k_decode``)."""
    return bool(getattr(imagecodecs, "HTJ2K", None) and imagecodecs.HTJ2K.available)


def codec_status(target: str, *, force_fallback: bool = False) -> CodecStatus:
    """Resolve the configured target (htj2k, htj2k-rpcl, jpeg2000) against what is installed."""
    if target == "jpeg2000":
        ok = bool(imagecodecs.JPEG2K.available)
        return CodecStatus(
            ok,
            "jpeg2000",
            JPEG2000_LOSSLESS,
            False,
            f"OpenJPEG {imagecodecs.jpeg2k_version()} (configured)",
        )
    if htj2k_available() and not force_fallback:
        syntax = HTJ2K_LOSSLESS_RPCL if target == "htj2k-rpcl" else HTJ2K_LOSSLESS
        return CodecStatus(True, "htj2k", syntax, False, imagecodecs.htj2k_version())
    ok = bool(imagecodecs.JPEG2K.available)
    return CodecStatus(
        ok,
        "jpeg2000",
        JPEG2000_LOSSLESS,
        True,
        "HTJ2K encoding unavailable; falling back to JPEG 2000 lossless",
    )
