"""Expand a ``.zip`` among uploaded files, with caps, never trusting its names or sizes.

Entry names become series labels only; entries are written under names dicomgate chooses.
Sizes are counted while decompressing (the sizes in the zip's directory can lie), so a zip bomb
is stopped after at most ``max_total_bytes`` of output, whatever it claims.
"""

from __future__ import annotations

import posixpath
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from dicomgate.errors import UnprocessableInput
from dicomgate.kit.disk import insufficient_storage

READ_CHUNK = 1024 * 1024
MAX_RATIO = 200  # uncompressed / compressed, per entry; DICOM rarely passes ~20


class UnsafeArchive(UnprocessableInput):
    """A zip that breaks a cap (entries, size, ratio) or cannot be read."""

    default_message = "The zip archive was refused"


@dataclass(frozen=True)
class ZipEntry:
    """One file taken out of a zip: its label (``folder/name`` inside the zip) and temp path."""

    name: str
    folder: str
    path: Path
    size: int


@dataclass
class ExpandedZip:
    """What a zip yielded: files extracted and entries refused (name, reason)."""

    entries: list[ZipEntry] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


def is_zip_upload(filename: str, head: bytes) -> bool:
    """A ``.zip`` name or the local-file-header signature ``PK\\x03\\x04``."""
    return filename.lower().endswith(".zip") or head.startswith(b"PK\x03\x04")


def unsafe_name_reason(name: str) -> str | None:
    """Why an entry name is refused (absolute, drive letter, ``..``), or None when it is fine."""
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        return "absolute path in the archive"
    if any(part == ".." for part in normalised.split("/")):
        return "'..' in the archive path"
    if "\x00" in normalised:
        return "NUL byte in the archive path"
    return None


def _skipped(name: str) -> bool:
    """Folders and macOS resource forks are not files the user meant to upload."""
    base = posixpath.basename(name)
    return name.endswith("/") or name.startswith("__MACOSX/") or base.startswith("._")


def expand_zip(
    archive: Path,
    dest: Path,
    *,
    max_entries: int,
    max_entry_bytes: int,
    max_total_bytes: int,
    max_ratio: int = MAX_RATIO,
) -> ExpandedZip:
    """Extract the files of ``archive`` into ``dest`` as ``00000.entry`` …; enforce the caps.

    Runs in a thread (blocking I/O). Raises UnsafeArchive when the archive as a whole is refused
    (unreadable, too many entries, too much output, a bomb); a single bad name is only refused.
    """
    result = ExpandedZip()
    total = 0
    try:
        dest.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(archive) as zf:
            infos = [i for i in zf.infolist() if not _skipped(i.filename)]
            if len(infos) > max_entries:
                raise UnsafeArchive(
                    f"The zip has {len(infos)} files; at most {max_entries} are accepted"
                )
            for index, info in enumerate(infos):
                reason = unsafe_name_reason(info.filename)
                if reason is not None:
                    result.refused.append((info.filename, f"Refused: {reason}"))
                    continue
                if info.flag_bits & 0x1:
                    result.refused.append((info.filename, "Refused: encrypted zip entry"))
                    continue
                if info.file_size > max_entry_bytes:
                    raise UnsafeArchive(
                        f"Zip entry {info.filename!r} would be {info.file_size} bytes; "
                        f"the limit is {max_entry_bytes}"
                    )
                limit = min(
                    max_entry_bytes, max_total_bytes - total, max(info.compress_size, 1) * max_ratio
                )
                target = dest / f"{index:05d}.entry"
                size = 0
                with zf.open(info) as src, target.open("wb") as out:
                    while chunk := src.read(READ_CHUNK):
                        size += len(chunk)
                        if size > limit:
                            out.close()
                            target.unlink()
                            raise UnsafeArchive(
                                _over_limit(info, size, limit, max_ratio, max_total_bytes, total)
                            )
                        out.write(chunk)
                total += size
                folder = posixpath.dirname(info.filename.replace("\\", "/"))
                result.entries.append(ZipEntry(info.filename, folder, target, size))
    except UnsafeArchive:
        raise
    except OSError as exc:
        full = insufficient_storage(exc, "expanding a zip archive")
        if full is not None:
            raise full from None
        raise UnsafeArchive(f"The zip archive cannot be read: {exc}") from None
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        NotImplementedError,
        EOFError,
        ValueError,
    ) as exc:
        raise UnsafeArchive(f"The zip archive cannot be read: {exc}") from None
    return result


def _over_limit(
    info: zipfile.ZipInfo, size: int, limit: int, max_ratio: int, max_total: int, total_before: int
) -> str:
    if total_before + size > max_total:
        return f"The zip expands to more than {max_total} bytes (refused as a zip bomb)"
    if size > max(info.compress_size, 1) * max_ratio:
        return f"Zip entry {info.filename!r} expands more than {max_ratio}× (refused as a zip bomb)"
    return f"Zip entry {info.filename!r} is larger than {limit} bytes"
