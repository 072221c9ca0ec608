"""HTJ2K backend (ISO/IEC 15444-15, OpenJPH through imagecodecs): encode and decode one frame.

Lossless frames are encoded reversibly, lossy frames irreversibly with the plan's quantization
step; both with the plan's decomposition levels and TLM markers (PS3.5 §10.18).
"""

from __future__ import annotations

import imagecodecs
import numpy as np

from dicomgate.codec.plan import EncodePlan


def encoder_array(frame: np.ndarray, stored: int, signed: bool) -> tuple[np.ndarray, int]:
    """The array to hand the encoder and its container bit depth.

    ``htj2k_encode`` writes the container depth (8 or 16) as the codestream precision; the
    codestream is re-labelled with the real precision (Bits Stored) afterwards, see
    :func:`set_precision`. Unsigned values are offset so that the decoder's DC level shift for
    the real precision (ISO/IEC 15444-1 Annex G.1) reproduces them exactly.
    """
    depth = 8 if stored <= 8 else 16
    if signed:
        arr = frame.astype(np.int8 if depth == 8 else np.int16, copy=False)
    else:
        offset = (1 << (depth - 1)) - (1 << (stored - 1))
        wide = frame.astype(np.uint32) + offset if offset else frame
        arr = np.asarray(wide).astype(np.uint8 if depth == 8 else np.uint16)
    return np.ascontiguousarray(arr), depth


def set_precision(codestream: bytes, stored: int, signed: bool) -> bytes:
    """Rewrite each component's Ssiz in the SIZ marker to the real precision (Bits Stored).

    ISO/IEC 15444-1 §A.5.1: SIZ follows SOC; Csiz is at byte 40 and each component's Ssiz
    (bit 7 = signed, bits 0–6 = precision − 1) at 42 + 3 × component.
    """
    if codestream[:4] != b"\xff\x4f\xff\x51":
        raise ValueError("not a J2K codestream")
    csiz = int.from_bytes(codestream[40:42], "big")
    buf = bytearray(codestream)
    value = (0x80 if signed else 0) | (stored - 1)
    for c in range(csiz):
        buf[42 + 3 * c] = value
    return bytes(buf)


def encode_frame(frame: np.ndarray, plan: EncodePlan) -> bytes:
    """Encode one frame (rows × cols [× 3], interleaved) as an HTJ2K codestream."""
    if plan.lossy_step is not None:
        return bytes(
            imagecodecs.htj2k_encode(
                frame,
                plan.lossy_step,
                reversible=False,
                rgb=plan.colour_transform,
                resolutions=plan.levels,
                tlm=True,
                tilepart=1,
            )
        )
    arr, depth = encoder_array(frame, plan.stored, plan.signed)
    stream = bytes(
        imagecodecs.htj2k_encode(
            arr,
            reversible=True,
            rgb=plan.colour_transform,
            resolutions=plan.levels,
            tlm=True,
            tilepart=1,
        )
    )
    if plan.stored != depth:
        stream = set_precision(stream, plan.stored, plan.signed)
    return stream


def decode_frame(stream: bytes) -> np.ndarray:
    """Decode one HTJ2K codestream to rows × cols [× samples], interleaved."""
    return np.asarray(imagecodecs.htj2k_decode(stream, planar=False))
