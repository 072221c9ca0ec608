"""dicomgate's converter as a Python library: a pydicom Dataset, a file or bytes to lossless HTJ2K.

    >>> from dicomgate import converter
    >>> result = converter.convert_file("ct.dcm", "ct_htj2k.dcm")  # doctest: +SKIP

The same codec and rules as the service and ``dicomgate transcode``: every frame is encoded,
decoded again and compared with the source before a result is returned, and an instance the
rules keep as it is (a lossy source, no pixel data, already HTJ2K, padded Pixel Data, …) is a
successful pass-through that says why. Nothing here needs the service, Orthanc or a database.
The work runs in the calling thread and is CPU-bound: from async code, run it in a thread or a
process pool.

Public, and kept stable: :func:`convert_dataset`, :func:`convert_file`, :func:`convert_bytes`,
:class:`ConvertOptions`, :class:`ConvertResult`, and the errors they raise, re-exported here:
:class:`DicomgateError` (the base of all three), :class:`NotDicom` (not DICOM at all),
:class:`InvalidDicom` (truncated, corrupt, or its identity UIDs missing or not UIDs) and
:class:`ImageTooLarge` (more pixels than ``max_pixels``). Bad options raise ``ValueError``, and
files that cannot be read or written ``OSError``. Every other module of the ``dicomgate``
package (``dicomgate.codec``, ``dicomgate.dicom``, …) is the service's own and may change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import cached_property
from io import BytesIO
from pathlib import Path
from typing import get_args

import pydicom
from pydicom.dataset import Dataset, FileDataset

from dicomgate.codec.transcode import (
    TranscodeOptions,
    TranscodeResult,
    transcode,
    transcode_dataset,
)
from dicomgate.errors import DicomgateError, ImageTooLarge, InvalidDicom, NotDicom
from dicomgate.settings import TargetSyntax

__all__ = [
    "ConvertOptions",
    "ConvertResult",
    "DicomgateError",
    "ImageTooLarge",
    "InvalidDicom",
    "NotDicom",
    "convert_bytes",
    "convert_dataset",
    "convert_file",
]

_DEFAULTS = TranscodeOptions()


@dataclass(frozen=True, kw_only=True)
class ConvertOptions:
    """How to convert (the defaults are the service's).

    ``target``: ``"htj2k"`` (HTJ2K Lossless, …4.201), ``"htj2k-rpcl"`` (…4.202, written only
    when each codestream meets PS3.5 §10.18, else …4.201) or ``"jpeg2000"`` (…4.90). Without an
    HTJ2K encoder on the machine, the HTJ2K targets fall back to …4.90 (see ``transfer_syntax``).
    ``lossy_quality``: None (lossless, the default) or 0 < q ≤ 100 for lossy HTJ2K (…4.203), a
    new instance with a new SOP Instance UID; never for diagnostic images.
    ``max_pixels``: the largest Rows × Columns × Samples × Frames converted (ImageTooLarge beyond).
    """

    target: TargetSyntax = "htj2k"
    lossy_quality: float | None = None
    max_pixels: int = _DEFAULTS.max_pixels

    def __post_init__(self) -> None:
        if self.target not in get_args(TargetSyntax):
            raise ValueError(f"target must be one of {', '.join(get_args(TargetSyntax))}")
        if self.lossy_quality is not None and not 0 < self.lossy_quality <= 100:
            raise ValueError("lossy_quality must be None (lossless) or in (0, 100]")
        if self.max_pixels < 1:
            raise ValueError("max_pixels must be at least 1")


@dataclass(frozen=True)
class ConvertResult:
    """What a conversion made and why.

    ``data`` is the output DICOM file (Part 10). ``converted`` is False for a pass-through, whose
    ``reason`` (a code such as ``"lossy_source"``) and ``reason_text`` say why; ``data`` is then
    the input bytes unchanged (from :func:`convert_bytes` and :func:`convert_file`) or the
    dataset written as it is (from :func:`convert_dataset`). ``verified``: every frame was
    decoded again and found identical to the source (lossless conversions only).
    ``original_size`` is None for a dataset (it has no file size).
    """

    data: bytes
    converted: bool
    reason: str | None
    reason_text: str | None
    source_transfer_syntax: str
    transfer_syntax: str
    sop_instance_uid: str
    frames: int
    verified: bool
    original_size: int | None
    size: int
    elapsed: float
    path: Path | None = None  # where convert_file wrote ``data``

    @cached_property
    def dataset(self) -> FileDataset:
        """The output parsed with pydicom (read once, on first use)."""
        return pydicom.dcmread(BytesIO(self.data))


def convert_bytes(data: bytes, *, options: ConvertOptions | None = None) -> ConvertResult:
    """Convert one DICOM file held in memory (Part 10, or a bare dataset)."""
    return _result(transcode(data, _transcode_options(options)), original_size=len(data))


def convert_dataset(ds: Dataset, *, options: ConvertOptions | None = None) -> ConvertResult:
    """Convert a pydicom Dataset (as read, or edited); ``ds`` itself is left as it was."""
    result = transcode_dataset(ds, _transcode_options(options), original_size=0)
    return _result(result, original_size=None)


def convert_file(
    path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    options: ConvertOptions | None = None,
) -> ConvertResult:
    """Convert the file at ``path`` into ``output_path`` (a pass-through is copied unchanged).

    The output appears whole or not at all (written beside it, then renamed); nothing is written
    when the input is refused. ``output_path`` may not be the input itself (ValueError).
    """
    source, target = Path(path), Path(output_path)
    if target.resolve() == source.resolve():
        raise ValueError(f"output_path is the input file {source}: it is never overwritten")
    data = source.read_bytes()
    result = _result(transcode(data, _transcode_options(options)), original_size=len(data))
    partial = target.with_name(target.name + ".partial")
    try:
        partial.write_bytes(result.data)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return replace(result, path=target)


def _transcode_options(options: ConvertOptions | None) -> TranscodeOptions:
    options = options or ConvertOptions()
    return TranscodeOptions(
        target=options.target,
        lossy_quality=options.lossy_quality,
        max_pixels=options.max_pixels,
    )


def _result(result: TranscodeResult, *, original_size: int | None) -> ConvertResult:
    return ConvertResult(
        data=result.data,
        converted=result.converted,
        reason=None if result.reason is None else str(result.reason),
        reason_text=None if result.reason is None else result.reason.text,
        source_transfer_syntax=result.source_transfer_syntax,
        transfer_syntax=result.transfer_syntax,
        sop_instance_uid=result.sop_instance_uid,
        frames=result.frames,
        verified=result.verified,
        original_size=original_size,
        size=result.size,
        elapsed=result.elapsed,
    )
