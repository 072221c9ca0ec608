"""PNG previews rendered by dicomgate itself (so HTJ2K and JPEG 2000 work whatever Orthanc can do).

A pure function over bytes, run in the worker pool. The greyscale pipeline follows PS3.3
§C.11 (Modality LUT → VOI LUT → Presentation): rescale slope/intercept, then the VOI LUT
Sequence or the first Window Center/Width pair (linear function, PS3.3 §C.11.2.1.2.1), or the
frame's own min–max when the file gives no window; MONOCHROME1 is inverted. Colour stays colour.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import imagecodecs
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_color_lut, apply_rescale, apply_voi_lut
from pydicom.pixels.utils import pixel_array

from dicomgate.codec.decoding import quiet_plugin_failures, undecodable
from dicomgate.dicom.image import ImageGeometry
from dicomgate.dicom.reading import read_dataset
from dicomgate.errors import FrameNotFound, UnprocessableInput

log = logging.getLogger(__name__)

PIXEL_DATA_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def _first(value: Any) -> float:
    """First value of a possibly multi-valued numeric attribute."""
    if isinstance(value, pydicom.multival.MultiValue | list | tuple):
        return float(value[0])
    return float(value)


def _window_to_uint8(arr: np.ndarray, center: float, width: float) -> np.ndarray:
    """Linear VOI function of PS3.3 §C.11.2.1.2.1 mapped onto 0–255."""
    width = max(width, 1.0)
    scaled = ((arr - (center - 0.5)) / (width - 1.0 if width > 1 else 1.0) + 0.5) * 255.0
    return np.clip(scaled, 0, 255)


def _min_max_to_uint8(arr: np.ndarray) -> np.ndarray:
    lo = float(np.min(arr))
    hi = float(np.max(arr))
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.float64)
    return (arr.astype(np.float64) - lo) * (255.0 / (hi - lo))


@dataclass(frozen=True)
class Window:
    """A VOI window given by the caller (PS3.18 §8.3.5.1.2): center, width and VOI LUT
    function (PS3.3 C.11.2.1.2: LINEAR, LINEAR_EXACT or SIGMOID)."""

    center: float
    width: float
    function: str = "LINEAR"


def _apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """PS3.3 §C.11.2.1.2.1 (LINEAR), §C.11.2.1.3.2 (LINEAR_EXACT), §C.11.2.1.3.1 (SIGMOID)."""
    if window.function == "SIGMOID":
        width = max(window.width, 1e-6)
        return 255.0 / (1.0 + np.exp(-4.0 * (values - window.center) / width))
    if window.function == "LINEAR_EXACT":
        width = max(window.width, 1e-6)
        return np.clip(((values - window.center) / width + 0.5) * 255.0, 0, 255)
    return _window_to_uint8(values, window.center, window.width)


def _grey(arr: np.ndarray, ds: Dataset, window: Window | None = None) -> np.ndarray:
    values = apply_rescale(arr, ds).astype(np.float64)
    if window is not None:
        out = _apply_window(values, window)
    elif "VOILUTSequence" in ds:
        out = _min_max_to_uint8(apply_voi_lut(values, ds, index=0, prefer_lut=True))
    elif ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        out = _window_to_uint8(values, _first(ds.WindowCenter), _first(ds.WindowWidth))
    else:
        out = _min_max_to_uint8(values)
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        out = 255.0 - out
    return out


def _colour(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    if ds.get("PhotometricInterpretation") == "PALETTE COLOR":
        rgb: np.ndarray = apply_color_lut(arr, ds)
        bits = 16 if rgb.dtype.itemsize > 1 else 8
        scaled: np.ndarray = rgb.astype(np.float64) * (255.0 / (2**bits - 1))
        return scaled
    bits_stored = int(ds.get("BitsStored", 8) or 8)
    values: np.ndarray = arr.astype(np.float64)
    return values if bits_stored == 8 else values * (255.0 / (2**bits_stored - 1))


def render_frame(
    data: bytes, *, frame: int = 0, max_pixels: int, window: Window | None = None
) -> np.ndarray:
    """One frame of a DICOM file as 8-bit pixels (rows × columns, × 3 for colour); ``window``
    replaces the file's own VOI for greyscale images."""
    ds = read_dataset(data)
    if not any(keyword in ds for keyword in PIXEL_DATA_KEYWORDS):
        raise UnprocessableInput("The instance has no pixel data to preview")
    if "PixelData" not in ds:
        raise UnprocessableInput("Float pixel data cannot be previewed")
    geometry = ImageGeometry.of(ds)
    geometry.check_budget(max_pixels=max_pixels)
    frames = geometry.frames
    if not 0 <= frame < frames:
        raise FrameNotFound(f"Frame {frame} does not exist; the instance has {frames} frame(s)")
    palette = ds.get("PhotometricInterpretation") == "PALETTE COLOR"
    try:
        # Decodes only the requested frame; YBR is converted to RGB (as_rgb defaults to True).
        with quiet_plugin_failures():
            arr = pixel_array(ds, index=frame if frames > 1 else None, as_rgb=not palette)
    except (NotImplementedError, RuntimeError, ValueError, TypeError, AttributeError) as exc:
        log.info("Preview decoding failed: %s", exc)
        raise undecodable(ds) from None
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    out = _colour(arr, ds) if samples > 1 or palette else _grey(arr, ds, window)
    return np.ascontiguousarray(np.clip(np.rint(out), 0, 255).astype(np.uint8))


def render_preview(data: bytes, *, frame: int = 0, max_pixels: int) -> bytes:
    """Render one frame of a DICOM file as an 8-bit PNG (greyscale or RGB)."""
    image = render_frame(data, frame=frame, max_pixels=max_pixels)
    return bytes(imagecodecs.png_encode(image))
