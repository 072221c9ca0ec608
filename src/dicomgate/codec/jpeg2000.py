"""JPEG 2000 backend (ISO/IEC 15444-1, OpenJPEG through imagecodecs): the lossless fallback
when HTJ2K encoding is unavailable, and the ``jpeg2000`` target (PS3.5 §8.2.4)."""

from __future__ import annotations

import imagecodecs
import numpy as np

from dicomgate.codec.plan import EncodePlan


def resolutions(rows: int, cols: int, levels: int) -> int:
    """OpenJPEG needs each dimension ≥ 2**(resolutions - 1): fewer levels for tiny images."""
    return min(levels, max(min(rows, cols).bit_length() - 1, 0)) + 1


def encode_frame(frame: np.ndarray, plan: EncodePlan) -> bytes:
    """Encode one frame (rows × cols [× 3], interleaved) as a reversible J2K codestream."""
    return bytes(
        imagecodecs.jpeg2k_encode(
            frame,
            codecformat="J2K",
            reversible=True,
            level=0,
            bitspersample=plan.stored,
            mct=plan.colour_transform,
            resolutions=resolutions(frame.shape[0], frame.shape[1], plan.levels),
            numthreads=1,
        )
    )


def decode_frame(stream: bytes) -> np.ndarray:
    """Decode one J2K codestream to rows × cols [× samples], interleaved."""
    return np.asarray(imagecodecs.jpeg2k_decode(stream, planar=False))
