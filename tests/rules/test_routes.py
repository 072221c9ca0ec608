"""The rules admin API: the rules as loaded, the backlog, pause and resume, and its errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from dicomgate.app import create_app
from dicomgate.settings import Settings
from tests.orthanc_process import OrthancProcess
from tests.rules.helpers import rules_settings

RULES = """
timezone = "Europe/Brussels"

[[rules]]
name = "ct-at-night"
modalities = ["CT"]
calling_aets = ["CT_*"]
delay = "PT30M"
windows = [{ start = "22:00", end = "06:00", days = ["mon", "fri"] }]

[[rules]]
name = "the-rest"
"""


async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://dicomgate.test") as c:
            yield c


@pytest.fixture
async def rules_api(orthanc: OrthancProcess, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The service with a rules file and no follower (nothing moves while the test reads)."""
    settings = await rules_settings(orthanc, tmp_path, RULES, rules_follower=False)
    async for client in _client(create_app(settings)):
        yield client


@pytest.fixture
async def no_rules_api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The service without a rules file."""
    async for client in _client(create_app(settings)):
        yield client


class TestListRules:
    async def test_every_rule_as_the_file_gives_it_in_order(
        self, rules_api: httpx.AsyncClient
    ) -> None:
        answer = await rules_api.get("/api/ris/rules/")
        assert answer.status_code == 200
        body = answer.json()
        assert (body["enabled"], body["timezone"]) == (True, "Europe/Brussels")
        assert body["follower"] == {"last_seq": None, "orthanc_last_seq": None, "lag_changes": 0}
        night, rest = body["rules"]
        assert night == {
            "name": "ct-at-night",
            "target": "htj2k",
            "delay_seconds": 1800.0,
            "windows": [{"start": "22:00", "end": "06:00", "days": ["mon", "fri"]}],
            "conditions": {
                "modalities": ["CT"],
                "sop_classes": None,
                "station_names": None,
                "calling_aets": ["CT_*"],
                "institutions": None,
                "study_older_than_days": None,
            },
            "paused": False,
            "paused_by": None,
            "paused_at": None,
            "waiting": 0,
            "queued": 0,
            "instances": {"converted": 0, "skipped": 0, "failed": 0},
        }
        assert (rest["name"], rest["windows"], rest["delay_seconds"]) == ("the-rest", [], 0.0)

    async def test_without_a_rules_file_nothing_is_enabled(
        self, no_rules_api: httpx.AsyncClient
    ) -> None:
        body = (await no_rules_api.get("/api/ris/rules/")).json()
        assert (body["enabled"], body["timezone"], body["rules"]) == (False, None, [])


class TestBacklog:
    async def test_empty(self, rules_api: httpx.AsyncClient) -> None:
        answer = await rules_api.get("/api/ris/rules/backlog/")
        assert answer.status_code == 200
        assert (answer.json()["waiting"], answer.json()["queued"], answer.json()["items"]) == (
            0,
            0,
            [],
        )

    @pytest.mark.parametrize("limit", ["0", "1001", "many"])
    async def test_a_bad_limit_is_a_422(self, rules_api: httpx.AsyncClient, limit: str) -> None:
        answer = await rules_api.get("/api/ris/rules/backlog/", params={"limit": limit})
        assert answer.status_code == 422
        assert answer.json()["type"] == "ValidationError"
        assert answer.json()["error"].startswith("Invalid request: limit:")


class TestPauseAndResume:
    async def test_pause_is_kept_and_said_and_resume_lifts_it(
        self, rules_api: httpx.AsyncClient
    ) -> None:
        first = await rules_api.post("/api/ris/rules/the-rest/pause/")
        again = await rules_api.post("/api/ris/rules/the-rest/pause/")
        assert (first.status_code, again.status_code) == (200, 200)
        assert first.json()["paused"] is True
        assert first.json()["paused_at"] == again.json()["paused_at"]  # paused once
        assert first.json()["paused_at"].endswith(("Z", "+00:00"))
        listed = {
            r["name"]: r["paused"] for r in (await rules_api.get("/api/ris/rules/")).json()["rules"]
        }
        assert listed == {"ct-at-night": False, "the-rest": True}

        resumed = await rules_api.post("/api/ris/rules/the-rest/resume/")
        assert (resumed.status_code, resumed.json()["paused"], resumed.json()["paused_by"]) == (
            200,
            False,
            None,
        )
        again_resumed = await rules_api.post("/api/ris/rules/the-rest/resume/")
        assert (again_resumed.status_code, again_resumed.json()["paused"]) == (200, False)

    @pytest.mark.parametrize("action", ["pause", "resume"])
    async def test_an_unknown_rule_is_a_404_and_is_audited(
        self, rules_api: httpx.AsyncClient, action: str
    ) -> None:
        answer = await rules_api.post(f"/api/ris/rules/no-such-rule/{action}/")
        assert answer.status_code == 404
        assert answer.json() == {
            "success": False,
            "error": "No compression rule named 'no-such-rule'",
            "type": "RuleNotFound",
        }
        audit = (await rules_api.get("/api/ris/audit/", params={"action": "rules"})).json()
        assert [(e["status_code"], e["resource"]) for e in audit["events"]] == [
            (404, {"name": "no-such-rule"})
        ]

    async def test_without_a_rules_file_there_is_nothing_to_pause(
        self, no_rules_api: httpx.AsyncClient
    ) -> None:
        answer = await no_rules_api.post("/api/ris/rules/anything/pause/")
        assert answer.status_code == 404
        assert answer.json()["error"] == (
            "No compression rules are configured (DICOMGATE_RULES_FILE)"
        )
