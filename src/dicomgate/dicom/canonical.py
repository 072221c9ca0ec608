"""What pydicom writes for an element read raw: its value converted, then written back — cached.

Reading an element converts its bytes to a value (text decoded with the dataset's character set,
numbers unpacked) and writing encodes the value again (explicit VR little endian, PS3.5 §7.1.2).
Both are pure functions of the element's tag, VR, bytes and length form, the character set it
is read in, the one it is written in, and pydicom's configuration. A series repeats most of its
elements from slice to slice (patient, study, equipment, geometry), so the result is cached per
process: the fingerprint (:mod:`.fingerprint`) and the upload reader (:mod:`.reading`) then pay
pydicom's per-element work once per distinct value instead of once per element of every file.

Only elements whose conversion depends on nothing else are cached: explicit VR little endian,
a two-letter VR that is neither SQ (nested items have their own character sets and VRs) nor
UN (pydicom may replace it by the dictionary's VR, resolved against the dataset), values read
(not deferred) and short, and not Specific Character Set itself.
"""

from __future__ import annotations

import functools
from collections.abc import MutableSequence
from dataclasses import dataclass
from typing import Any

from pydicom import config
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element

from dicomgate.dicom.part10 import raw_element_bytes

CACHED_VALUE_BYTES = 256  # longer values (rarely repeated) are converted every time
CACHE_ENTRIES = 16384
_UNDEFINED = 0xFFFFFFFF
_SPECIFIC_CHARACTER_SET = 0x00080005
_NOT_CACHED_VR = frozenset({"SQ", "UN"})

Charset = tuple[bool, tuple[str, ...]]  # (given as one str, the names): hashable, reversible


def charset_key(value: object) -> Charset | None:
    """A character set (a str or a list of str, as pydicom holds them) as a cache key part;
    None for anything else (not cached)."""
    if isinstance(value, str):
        return (True, (value,))
    if isinstance(value, MutableSequence | tuple) and all(isinstance(v, str) for v in value):
        return (False, tuple(value))
    return None


def _charset(key: Charset) -> str | list[str]:
    single, names = key
    return names[0] if single else list(names)


def _config() -> tuple[Any, ...]:
    """The pydicom settings a conversion or a write depends on (part of every key)."""
    return (
        config.settings.reading_validation_mode,
        config.settings.writing_validation_mode,
        config.use_DS_decimal,
        config.use_DS_numpy,
        config.use_IS_numpy,
        config.convert_wrong_length_to_UN,
        config.replace_un_with_known_vr,
        config.data_element_callback,
    )


def cacheable(raw: RawDataElement) -> bool:
    """True when ``raw``'s conversion and writing depend only on the key (see the module)."""
    vr, value = raw.VR, raw.value
    return (
        isinstance(value, bytes)
        and len(value) <= CACHED_VALUE_BYTES
        and isinstance(vr, str)
        and len(vr) == 2
        and vr not in _NOT_CACHED_VR
        and raw.tag != _SPECIFIC_CHARACTER_SET
        and raw.is_little_endian is True
        and raw.is_implicit_VR is False
    )


@dataclass(frozen=True)
class Context:
    """What converting and writing a dataset's elements depends on besides each element: the
    character set its values are read in, the one they are written in, pydicom's settings.
    Made once per dataset (:func:`context`)."""

    read_charset: Charset
    write_charset: Charset
    settings: tuple[Any, ...]

    def written(self, raw: RawDataElement) -> bytes | None:
        """The bytes ``write_data_element`` writes for ``raw`` converted as ``Dataset[tag]``
        converts it (``raw`` must be :func:`cacheable`); None where writing it fails.
        Conversion errors (a malformed value) are raised, and not cached."""
        return _written(*self._key(raw))

    def unchanged(self, raw: RawDataElement) -> bool:
        """True when ``raw`` (:func:`cacheable`) converts and writes back to exactly the bytes
        read (header and value, as ``part10.raw_element_bytes`` copies it). Conversion errors
        are raised."""
        return _unchanged(*self._key(raw))

    def _key(self, raw: RawDataElement) -> tuple[Any, ...]:
        return (
            raw.tag,
            str(raw.VR),
            raw.value,
            raw.length == _UNDEFINED,
            self.read_charset,
            self.write_charset,
            self.settings,
        )


def context(*, read_charset: object, write_charset: object) -> Context | None:
    """The context of a dataset whose values are read in ``read_charset`` and written in
    ``write_charset`` (as pydicom holds them); None where either is not a str or a list of str.
    """
    read, write = charset_key(read_charset), charset_key(write_charset)
    if read is None or write is None:
        return None
    return Context(read, write, _config())


@functools.lru_cache(maxsize=CACHE_ENTRIES)
def _written(
    tag: int,
    vr: str,
    value: bytes,
    undefined_length: bool,
    read_charset: Charset,
    write_charset: Charset,
    settings: tuple[Any, ...],
) -> bytes | None:
    raw = _raw(tag, vr, value, undefined_length)
    elem = convert(raw, read_charset=read_charset)
    return write(elem, write_charset=write_charset)


def _raw(tag: int, vr: str, value: bytes, undefined_length: bool) -> RawDataElement:
    """The raw element the cache key describes (explicit VR little endian)."""
    return RawDataElement(
        tag,  # type: ignore[arg-type]
        vr,
        _UNDEFINED if undefined_length else len(value),
        value,
        0,
        False,
        True,
    )


@functools.lru_cache(maxsize=CACHE_ENTRIES)
def _unchanged(
    tag: int,
    vr: str,
    value: bytes,
    undefined_length: bool,
    read_charset: Charset,
    write_charset: Charset,
    settings: tuple[Any, ...],
) -> bool:
    data = _written(tag, vr, value, undefined_length, read_charset, write_charset, settings)
    raw = _raw(tag, vr, value, undefined_length)
    return data is not None and data == raw_element_bytes(raw)


def convert(raw: RawDataElement, *, read_charset: Charset) -> DataElement:
    """``raw`` converted as ``Dataset.__getitem__`` converts it (a cacheable element)."""
    return convert_raw_data_element(raw, encoding=_charset(read_charset), ds=None)


def write(elem: DataElement, *, write_charset: Charset) -> bytes | None:
    """``elem`` as ``write_data_element`` writes it in explicit VR little endian; None where
    pydicom cannot write it."""
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    try:
        write_data_element(fp, elem, _charset(write_charset))
    except Exception:  # the caller takes pydicom's own path, which raises it again
        return None
    return fp.getvalue()


def cache_clear() -> None:
    """Forget every cached element (tests)."""
    _written.cache_clear()
    _unchanged.cache_clear()
