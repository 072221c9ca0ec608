"""Rendered images for DICOMweb (PS3.18 §8.3.5, §10.4.1.1.3): a frame windowed, cropped and
scaled to a viewport, encoded as JPEG or PNG. Pure work over bytes, run in the worker pool;
the pixel pipeline is the preview's (``codec.preview.render_frame``)."""

from __future__ import annotations

from dataclasses import dataclass

import imagecodecs
import numpy as np
from PIL import Image

from dicomgate.codec.preview import Window, render_frame

THUMBNAIL_SIZE = 128  # fits a thumbnail's longer side, unless a viewport says otherwise


@dataclass(frozen=True)
class Viewport:
    """PS3.18 §8.3.5.1.3: the output size and an optional source region (negative widths or
    heights flip the image)."""

    width: int
    height: int
    region: tuple[float, float, float, float] | None = None  # sx, sy, sw, sh


@dataclass(frozen=True)
class RenderOptions:
    """What one rendered image looks like."""

    media_type: str = "image/jpeg"
    frame: int = 0
    window: Window | None = None
    viewport: Viewport | None = None
    quality: int = 90
    thumbnail: bool = False


def _crop(image: np.ndarray, region: tuple[float, float, float, float]) -> np.ndarray:
    sx, sy, sw, sh = region
    rows, columns = image.shape[:2]
    x0, x1 = sorted((round(sx), round(sx + sw)))
    y0, y1 = sorted((round(sy), round(sy + sh)))
    x0, x1 = max(0, x0), min(columns, x1 if sw else columns)
    y0, y1 = max(0, y0), min(rows, y1 if sh else rows)
    out = image[y0:y1, x0:x1] if x1 > x0 and y1 > y0 else image
    if sw < 0:
        out = out[:, ::-1]
    if sh < 0:
        out = out[::-1]
    return np.ascontiguousarray(out)


def _fit(image: np.ndarray, width: int, height: int, *, enlarge: bool) -> np.ndarray:
    """Scale to fit ``width`` × ``height``, keeping the aspect ratio (Lanczos)."""
    rows, columns = image.shape[:2]
    scale = min(width / columns, height / rows)
    if scale >= 1 and not enlarge:
        return image
    size = (max(1, round(columns * scale)), max(1, round(rows * scale)))
    resized = Image.fromarray(image).resize(size, Image.Resampling.LANCZOS)
    return np.asarray(resized)


def render_task(data: bytes, options: RenderOptions, max_pixels: int) -> bytes:
    """One frame of a stored file, rendered as ``options`` say."""
    image = render_frame(data, frame=options.frame, max_pixels=max_pixels, window=options.window)
    viewport = options.viewport
    if viewport is not None and viewport.region is not None:
        image = _crop(image, viewport.region)
    if viewport is not None:
        image = _fit(image, viewport.width, viewport.height, enlarge=True)
    elif options.thumbnail:
        image = _fit(image, THUMBNAIL_SIZE, THUMBNAIL_SIZE, enlarge=False)
    if options.media_type == "image/png":
        return bytes(imagecodecs.png_encode(image))
    return bytes(imagecodecs.jpeg8_encode(image, level=options.quality))
