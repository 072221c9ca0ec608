"""Settings: the DICOMGATE_ prefix, the old system's aliases, and a README row for each."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomgate.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "DICOMGATE_ORTHANC_URL",
        "ORTHANC_API_URL",
        "ORTHANC_URL",
        "ORTHANC_USERNAME",
        "ORTHANC_USER",
        "ORTHANC_PASSWORD",
        "DICOMGATE_ORTHANC_USERNAME",
        "DICOMGATE_ORTHANC_PASSWORD",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(README.parent.parent)  # no .env file here
    return monkeypatch


@pytest.mark.parametrize("alias", ["ORTHANC_API_URL", "ORTHANC_URL", "DICOMGATE_ORTHANC_URL"])
def test_orthanc_url_aliases(clean_env: pytest.MonkeyPatch, alias: str) -> None:
    clean_env.setenv(alias, "http://pacs.example:8042/")
    assert Settings().orthanc_url == "http://pacs.example:8042"


@pytest.mark.parametrize("alias", ["ORTHANC_USERNAME", "ORTHANC_USER"])
def test_orthanc_credentials_aliases(clean_env: pytest.MonkeyPatch, alias: str) -> None:
    clean_env.setenv(alias, "gate")
    clean_env.setenv("ORTHANC_PASSWORD", "pw")
    settings = Settings()
    assert settings.orthanc_auth == ("gate", "pw")
    assert "pw" not in repr(settings)


def test_every_setting_is_documented_in_the_readme() -> None:
    text = README.read_text()
    missing = [
        f"DICOMGATE_{name.upper()}"
        for name in Settings.model_fields
        if f"DICOMGATE_{name.upper()}" not in text
    ]
    assert not missing, f"settings missing from README's configuration table: {missing}"
