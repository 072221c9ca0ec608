"""Reading patient import files (CSV or JSON) into raw rows; no DB, no web."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Literal

from dicomgate.errors import InvalidImportFile, UnsupportedImportFormat, UploadTooLarge

ImportFormat = Literal["csv", "json"]

MAX_IMPORT_BYTES = 32 * 1024**2  # a patient list, not an image: 32 MiB is generous
_CSV_TYPES = {
    "text/csv",
    "application/csv",
    "text/comma-separated-values",
    "application/vnd.ms-excel",
}
_JSON_TYPES = {"application/json", "text/json"}


def detect_format(*, filename: str | None, content_type: str | None) -> ImportFormat:
    """CSV or JSON, from the file name's extension first, then the declared content type."""
    name = (filename or "").lower()
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".json"):
        return "json"
    media = (content_type or "").split(";")[0].strip().lower()
    if media in _CSV_TYPES:
        return "csv"
    if media in _JSON_TYPES or media.endswith("+json"):
        return "json"
    raise UnsupportedImportFormat(
        f"Cannot tell the format of {filename or 'the upload'!r} "
        f"(content type {media or 'none'}): send a .csv or .json file"
    )


def _text(content: bytes) -> str:
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidImportFile(
            f"The import file is not UTF-8 text (invalid byte at offset {exc.start})"
        ) from None


def read_rows(content: bytes, *, fmt: ImportFormat) -> list[dict[str, Any]]:
    """The file's records as dictionaries (CSV: a header row names the columns).

    A record that is not an object (JSON) is kept as an empty dict marked with ``__invalid__``
    so that it is reported as rejected with its position, instead of failing the whole file.
    JSON may be a list of records or an object with a ``patients`` list (the search answer).
    """
    if len(content) > MAX_IMPORT_BYTES:
        raise UploadTooLarge(f"The import file is larger than {MAX_IMPORT_BYTES} bytes")
    text = _text(content)
    if fmt == "json":
        return _json_rows(text)
    return _csv_rows(text)


def _json_rows(text: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidImportFile(
            f"The import file is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("patients"), list):
        data = data["patients"]
    if not isinstance(data, list):
        raise InvalidImportFile(
            'JSON import must be a list of patient objects or {"patients": [...]}'
        )
    return [
        item if isinstance(item, dict) else {"__invalid__": "the record is not a JSON object"}
        for item in data
    ]


def _csv_rows(text: str) -> list[dict[str, Any]]:
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            text[:4096], delimiters=",;\t"
        )
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text, newline=""), dialect=dialect)
    if not reader.fieldnames:
        raise InvalidImportFile("The CSV import file is empty (no header row)")
    header = [(name or "").strip().lower() for name in reader.fieldnames]
    if "patient_id" not in header:
        raise InvalidImportFile(
            "The CSV header has no patient_id column "
            "(expected patient_id, family_name, given_name, birth_date, gender)"
        )
    reader.fieldnames = header
    rows: list[dict[str, Any]] = []
    try:
        for record in reader:
            if None in record:  # more cells than header columns
                record = {
                    "__invalid__": "the row has more cells than the header has columns",
                    "patient_id": record.get("patient_id"),
                }
            rows.append(record)
    except csv.Error as exc:
        raise InvalidImportFile(f"The CSV import file is malformed: {exc}") from None
    return rows
