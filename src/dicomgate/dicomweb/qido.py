"""QIDO-RS Search (PS3.18 §10.6): studies, series and instances found by Orthanc's /tools/find.

Every answer costs a fixed number of Orthanc calls, never one per result: the search itself
(expanded: main tags, parents, children), then for studies one series search (modalities and
instance counts), for series and instances the parents' content in one ``/tools/bulk-content``
call per level, and for instances the attributes Orthanc 1.10 does not index (SOP Class UID,
Rows, Columns, Bits Allocated, …) from the details cache or one ``instances-tags`` call per
series.

Matching (PS3.4 C.2.2.2, PS3.18 §8.3.4): single values, ``*``/``?`` wildcards, UID lists
(comma or backslash separated), date and time ranges, universal matching (empty value).
Person names match case-insensitively (PS3.4 C.2.2.2.1 allows it); since Orthanc's switch
applies to the whole query, other text keys of such a query are re-checked case-sensitively
here, and paging then happens after that check. ``fuzzymatching=true`` also makes each person
name a prefix (``doe`` finds ``DOE^JANE``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any, Literal

from pydicom.datadict import tag_for_keyword

from dicomgate.audit.context import Touched
from dicomgate.dicomweb.catalog import bounded
from dicomgate.dicomweb.dicomjson import element_json, vr_of_tag
from dicomgate.dicomweb.query import (
    AVAILABILITY,
    MODALITIES_IN_STUDY,
    PATIENT_ID,
    RETRIEVE_URL,
    SERIES_INSTANCES,
    SERIES_UID,
    SOP_UID,
    STUDY_INSTANCES,
    STUDY_SERIES,
    STUDY_UID,
    TEXT_VRS,
    Search,
)
from dicomgate.dicomweb.reader import Reader


@dataclass
class SearchAnswer:
    """The results (DICOM JSON objects) and whether more matched."""

    results: list[dict[str, Any]]
    more: bool


def _wildcard(value: str) -> re.Pattern[str]:
    """PS3.4 C.2.2.2.4: ``*`` any sequence, ``?`` one character; the rest literal."""
    pattern = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in value)
    return re.compile(pattern, re.DOTALL)


@lru_cache(maxsize=4096)
def _keyword_tag(keyword: str) -> int | None:
    tag = tag_for_keyword(keyword)
    return None if tag is None else int(tag)


def _main_values(resource: dict[str, Any]) -> dict[int, str]:
    """An expanded Orthanc resource's main tags (and its patient's) by tag."""
    out: dict[int, str] = {}
    for group in ("PatientMainDicomTags", "MainDicomTags"):
        for keyword, value in (resource.get(group) or {}).items():
            tag = _keyword_tag(keyword)
            if tag is not None and isinstance(value, str):
                out[tag] = value
    return out


def _orthanc_query(search: Search) -> tuple[dict[str, str], bool, list[tuple[int, str]]]:
    """The /tools/find query, its case sensitivity, and the keys to re-check exactly."""
    query: dict[str, str] = {}
    names = False
    for tag, value in search.filters.items():
        vr = vr_of_tag(tag)
        if vr == "PN" and value:
            names = True
            if search.fuzzy and "*" not in value and "?" not in value:
                value += "*"
        query[f"{tag >> 16:04x},{tag & 0xFFFF:04x}"] = value
    case_sensitive = not (names or search.fuzzy)
    recheck = [] if case_sensitive else [
        (tag, value)
        for tag, value in search.filters.items()
        if value and vr_of_tag(tag) in TEXT_VRS
    ]  # fmt: skip
    return query, case_sensitive, recheck


def _passes(resource: dict[str, Any], recheck: list[tuple[int, str]]) -> bool:
    values = _main_values(resource)
    for tag, wanted in recheck:
        found = values.get(tag)
        if found is None:
            continue  # not a main tag: Orthanc's (case-insensitive) verdict stands
        if not any(_wildcard(w).fullmatch(found) for w in wanted.split("\\")):
            return False
    return True


async def _matches(reader: Reader, search: Search) -> tuple[list[dict[str, Any]], bool]:
    query, case_sensitive, recheck = _orthanc_query(search)
    if not recheck:
        found = await reader.orthanc.find(
            search.level,
            query,
            expand=True,
            limit=search.limit + 1,
            since=search.offset,
            case_sensitive=case_sensitive,
        )
        return found[: search.limit], len(found) > search.limit
    found = await reader.orthanc.find(search.level, query, expand=True, case_sensitive=False)
    kept = [r for r in found if _passes(r, recheck)]
    end = search.offset + search.limit
    return kept[search.offset : end], len(kept) > end


def _elements(values: dict[int, str]) -> dict[int, dict[str, Any]]:
    out = {}
    for tag, text in values.items():
        element = element_json(tag, text)
        if element is not None:
            out[tag] = element
    return out


def _number(value: int) -> dict[str, Any]:
    return {"vr": "IS", "Value": [value]}


def _result(search: Search, available: dict[int, dict[str, Any]]) -> dict[str, Any]:
    wanted = search.attributes()
    chosen = (
        available if search.include_all else {t: e for t, e in available.items() if t in wanted}
    )
    return {f"{tag:08X}": chosen[tag] for tag in sorted(chosen)}


async def search(reader: Reader, parsed: Search) -> SearchAnswer:
    """Run one QIDO-RS search."""
    page, more = await _matches(reader, parsed)
    if parsed.level == "Study":
        rows = await _studies(reader, page)
    elif parsed.level == "Series":
        rows = await _series(reader, parsed, page)
    else:
        rows = await _instances(reader, parsed, page)
    results = [_result(parsed, row) for row in rows]
    reader.touch(
        Touched(
            patient_ids=_distinct(rows, PATIENT_ID),
            study_instance_uids=_distinct(rows, STUDY_UID),
            series_instance_uids=_distinct(rows, SERIES_UID),
            sop_instance_uids=_distinct(rows, SOP_UID),
        )
    )
    return SearchAnswer(results=results, more=more)


def _distinct(rows: list[dict[int, dict[str, Any]]], tag: int) -> list[str]:
    out: dict[str, None] = {}
    for row in rows:
        for value in row.get(tag, {}).get("Value", []):
            if isinstance(value, str) and value:
                out[value] = None
    return list(out)


def _common(reader: Reader, url: str) -> dict[int, dict[str, Any]]:
    return {
        RETRIEVE_URL: {"vr": "UR", "Value": [url]},
        AVAILABILITY: {"vr": "CS", "Value": ["ONLINE"]},
    }


def _uid(values: dict[int, str], tag: int) -> str:
    return values.get(tag, "")


async def _studies(reader: Reader, page: list[dict[str, Any]]) -> list[dict[int, dict[str, Any]]]:
    uids = [_uid(_main_values(s), STUDY_UID) for s in page]
    series = (
        await reader.orthanc.find(
            "Series", {"StudyInstanceUID": "\\".join(u for u in uids if u)}, expand=True
        )
        if any(uids)
        else []
    )
    by_study: dict[str, list[dict[str, Any]]] = {}
    for s in series:
        by_study.setdefault(str(s.get("ParentStudy", "")), []).append(s)
    rows = []
    for study, uid in zip(page, uids, strict=True):
        members = by_study.get(str(study["ID"]), [])
        modalities = sorted(
            {str(m.get("MainDicomTags", {}).get("Modality", "")) for m in members} - {""}
        )
        row = _elements(_main_values(study)) | _common(reader, reader.study_url(uid))
        row[MODALITIES_IN_STUDY] = {"vr": "CS", "Value": modalities} if modalities else {"vr": "CS"}
        row[STUDY_SERIES] = _number(len(study.get("Series", [])))
        row[STUDY_INSTANCES] = _number(sum(len(m.get("Instances", [])) for m in members))
        rows.append(row)
    return rows


async def _parents(
    reader: Reader, level: Literal["Study", "Series"], ids: list[str]
) -> dict[str, dict[str, Any]]:
    found = await reader.orthanc.bulk_content(level, list(dict.fromkeys(ids)))
    return {str(f["ID"]): f for f in found}


async def _series(
    reader: Reader, parsed: Search, page: list[dict[str, Any]]
) -> list[dict[int, dict[str, Any]]]:
    studies = await _parents(reader, "Study", [str(s.get("ParentStudy", "")) for s in page])
    rows = []
    for series in page:
        study_values = _main_values(studies.get(str(series.get("ParentStudy", "")), {}))
        values = study_values | _main_values(series)
        url = reader.series_url(_uid(values, STUDY_UID), _uid(values, SERIES_UID))
        row = _elements(values) | _common(reader, url)
        row[SERIES_INSTANCES] = _number(len(series.get("Instances", [])))
        rows.append(row)
    return rows


async def _instance_tags(
    reader: Reader, page: list[dict[str, Any]]
) -> dict[str, dict[int, dict[str, Any]]]:
    """Attributes Orthanc does not index: from cached metadata, else one call per series."""
    out: dict[str, dict[int, dict[str, Any]]] = {}
    missing: dict[str, list[str]] = {}
    for inst in page:
        cached = reader.cache.get(inst.get("FileUuid"))
        if cached is None:
            missing.setdefault(str(inst.get("ParentSeries", "")), []).append(str(inst["ID"]))
            continue
        parsed: dict[str, dict[str, Any]] = json.loads(cached.metadata)
        out[str(inst["ID"])] = {
            int(k, 16): v for k, v in parsed.items() if "BulkDataURI" not in v and v["vr"] != "SQ"
        }
    calls = [
        partial(reader.orthanc.series_instances_tags, series_id, short=True)
        for series_id in missing
    ]
    for tags_by_instance in await bounded(reader.concurrency, calls):
        for orthanc_id, tags in tags_by_instance.items():
            values = {int(k.replace(",", ""), 16): v for k, v in tags.items() if isinstance(v, str)}
            out[orthanc_id] = _elements(values)
    return out


async def _instances(
    reader: Reader, parsed: Search, page: list[dict[str, Any]]
) -> list[dict[int, dict[str, Any]]]:
    series = await _parents(reader, "Series", [str(i.get("ParentSeries", "")) for i in page])
    studies = await _parents(
        reader, "Study", [str(s.get("ParentStudy", "")) for s in series.values()]
    )
    extra = await _instance_tags(reader, page)
    rows = []
    for inst in page:
        parent = series.get(str(inst.get("ParentSeries", "")), {})
        values = (
            _main_values(studies.get(str(parent.get("ParentStudy", "")), {}))
            | _main_values(parent)
            | _main_values(inst)
        )
        url = reader.instance_url(
            _uid(values, STUDY_UID), _uid(values, SERIES_UID), _uid(values, SOP_UID)
        )
        row = extra.get(str(inst["ID"]), {}) | _elements(values) | _common(reader, url)
        rows.append(row)
    return rows
