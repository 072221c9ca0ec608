"""Decoding stored pixel data through pydicom: one extra JPEG plugin, quiet retries, one message.

pydicom tries each decoding plugin in turn and logs every plugin that fails with a full
traceback at ERROR (``pydicom.pixels.decoders.base``), even when a later plugin succeeds or the
caller handles the final failure. dicomgate handles it (a pass-through, a 422): inside
:func:`quiet_plugin_failures` those per-plugin records are dropped, and only there.

12-bit JPEG Extended (PS3.5 §A.4.1, 1.2.840.10008.1.2.4.51): pylibjpeg-libjpeg decodes
conformant files, Pillow never does (8-bit only), and real files such as NEMA's WG04 NM1_JPLY
(pydicom's ``JPEG-lossy.dcm``: Ss/Se of its sequential scan set to 1/0) make libjpeg stop
where libjpeg-turbo reads them. The plugin here, through imagecodecs' libjpeg-turbo (8- and
12-bit), is registered after pydicom's own, so it is only tried when they fail.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import imagecodecs
import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import UID, JPEGBaseline8Bit, JPEGExtended12Bit

from dicomgate.errors import UnprocessableInput

PLUGIN_LABEL = "dicomgate-libjpeg-turbo"
JPEG_SYNTAXES = (JPEGBaseline8Bit, JPEGExtended12Bit)
# pydicom's plugin contract: what the plugin needs, per transfer syntax it decodes.
DECODER_DEPENDENCIES = {uid: ("imagecodecs",) for uid in JPEG_SYNTAXES}
_PYDICOM_DECODER_LOG = logging.getLogger("pydicom.pixels.decoders.base")


def is_available(uid: str) -> bool:
    """pydicom's plugin contract: True when imagecodecs can decode ``uid`` here."""
    return uid in JPEG_SYNTAXES and bool(imagecodecs.JPEG8.available)


def decode_frame(src: bytes, runner: Any) -> bytes:
    """pydicom's plugin contract: one greyscale JPEG frame, 8 or 12 bits, as raw bytes.

    Colour frames are left to pydicom's plugins: libjpeg-turbo would convert YCbCr to RGB,
    and pydicom's ``raw`` decoding promises no colour conversion.
    """
    if runner.samples_per_pixel != 1:
        raise NotImplementedError("only greyscale JPEG is decoded by this plugin")
    frame = np.asarray(imagecodecs.jpeg8_decode(src))
    rows, columns = int(runner.rows), int(runner.columns)
    if frame.shape[:2] != (rows, columns):
        raise ValueError(f"the JPEG frame is {frame.shape[:2]}, the dataset says {rows}×{columns}")
    dtype = np.uint8 if int(runner.bits_allocated) == 8 else np.dtype("<u2")
    return np.ascontiguousarray(frame, dtype=dtype).tobytes()


def register_decoders() -> None:
    """Add the libjpeg-turbo plugin after pydicom's JPEG plugins (once per process)."""
    for uid in JPEG_SYNTAXES:
        try:
            get_decoder(uid).add_plugin(PLUGIN_LABEL, (__name__, "decode_frame"))
        except ValueError:  # already registered in this process
            continue


class _DropPluginFailures(logging.Filter):
    """Drops pydicom's per-plugin failure records (ERROR with a traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno >= logging.ERROR and record.funcName == "_decode_frame")


@contextmanager
def quiet_plugin_failures() -> Iterator[None]:
    """Within: a plugin that fails before another succeeds, or before the caller handles the
    final failure, logs nothing (the caller reports the outcome once)."""
    drop = _DropPluginFailures()
    _PYDICOM_DECODER_LOG.addFilter(drop)
    try:
        yield
    finally:
        _PYDICOM_DECODER_LOG.removeFilter(drop)


def syntax_of(ds: Dataset) -> UID | None:
    """The dataset's transfer syntax from its file meta, if it has one."""
    meta = getattr(ds, "file_meta", None)
    value = meta.get("TransferSyntaxUID") if meta is not None else None
    return UID(str(value)) if value else None


def undecodable(ds: Dataset) -> UnprocessableInput:
    """The one user message for pixel data no decoder here can read (no plugin names, no
    library messages: those go to the log)."""
    syntax = syntax_of(ds)
    described = f"{syntax.name} ({syntax})" if syntax is not None else "unknown transfer syntax"
    bits = ds.get("BitsStored")
    detail = f", {bits} bits stored" if bits not in (None, "") else ""
    return UnprocessableInput(f"The pixel data cannot be decoded: {described}{detail}")


register_decoders()
