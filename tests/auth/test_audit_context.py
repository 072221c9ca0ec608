"""note_touched: what a request touched accumulates on its ASGI state for the audit row."""

from __future__ import annotations

from starlette.requests import Request

from dicomgate.audit.context import STATE_KEY, note_touched


def _request() -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": []})


def test_notes_accumulate_in_order_without_duplicates_or_blanks() -> None:
    request = _request()
    note_touched(request, patient_ids=["P1"], study_instance_uids=["1.2.3"])
    note_touched(request, patient_ids=["P2", "P1", ""], sop_instance_uids=["1.2.3.4"])
    assert request.scope["state"][STATE_KEY] == {
        "patient_ids": ["P1", "P2"],
        "study_instance_uids": ["1.2.3"],
        "sop_instance_uids": ["1.2.3.4"],
    }


def test_nothing_noted_leaves_no_keys() -> None:
    request = _request()
    note_touched(request, patient_ids=[""])
    assert request.scope["state"][STATE_KEY] == {}
