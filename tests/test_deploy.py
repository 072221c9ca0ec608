"""The container files, checked without a Docker engine (none runs on the CI machines).

What is checked: docker-compose.yml against the Compose Specification's JSON schema (vendored by
check-jsonschema, so offline); every DICOMGATE_* variable it sets is a real setting (a typo would
be ignored silently at run time); secrets are required, never defaulted; only dicomgate is
published; the worker service runs the same image with the same Orthanc and database. The
Dockerfile runs as a non-root user, its health check calls the health route, its start command is
one the CLI accepts. Not checked here: building the image and
running it.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dicomgate.cli import build_parser
from dicomgate.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    schema = ["--builtin-schema", "vendor.compose-spec"]
    check = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *schema, str(COMPOSE)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def dicomgate_services(compose: dict) -> dict[str, dict]:
    """The services that run the dicomgate image (the API and the workers)."""
    image = compose["services"]["dicomgate"]["image"]
    return {name: svc for name, svc in compose["services"].items() if svc.get("image") == image}


def test_every_dicomgate_variable_in_compose_is_a_setting(compose: dict) -> None:
    known = {f"DICOMGATE_{name.upper()}" for name in Settings.model_fields}
    services = dicomgate_services(compose)
    assert set(services) == {"dicomgate", "worker"}
    for name, service in services.items():
        names = {var for var in service["environment"] if var.startswith("DICOMGATE_")}
        assert names, f"the {name} service sets no DICOMGATE_* variable"
        assert names - known == set(), name


def test_secrets_are_required_not_defaulted(compose: dict) -> None:
    text = COMPOSE.read_text()
    for secret in ("POSTGRES_PASSWORD", "ORTHANC_PASSWORD", "DICOMGATE_JWT_SECRET"):
        assert re.search(rf"\$\{{{secret}:\?", text), f"{secret} must use ${{{secret}:?…}}"
    gate = compose["services"]["dicomgate"]["environment"]
    assert gate["DICOMGATE_ORTHANC_PASSWORD"] == "${ORTHANC_PASSWORD}"
    assert "DICOMGATE_AUTH_ENABLED" not in gate  # never shipped with authentication off


def test_only_dicomgate_is_published(compose: dict) -> None:
    published = {name for name, svc in compose["services"].items() if svc.get("ports")}
    assert published == {"dicomgate"}


def test_the_worker_runs_the_same_image_on_the_same_orthanc_and_database(compose: dict) -> None:
    gate, worker = compose["services"]["dicomgate"], compose["services"]["worker"]
    assert (worker["build"], worker["image"]) == (gate["build"], gate["image"])
    assert worker["command"][:2] == ["dicomgate", "worker"]
    assert "--concurrency" in worker["command"]
    shared = (
        "DICOMGATE_DATABASE_URL",
        "DICOMGATE_ORTHANC_URL",
        "DICOMGATE_ORTHANC_USERNAME",
        "DICOMGATE_ORTHANC_PASSWORD",
    )
    for name in shared:
        assert worker["environment"][name] == gate["environment"][name], name
    assert gate["environment"]["DICOMGATE_DATABASE_URL"].startswith("postgresql")  # the queue
    assert "ports" not in worker and "expose" not in worker
    # The image's health check asks the HTTP API, which a worker does not serve.
    assert worker["healthcheck"] == {"disable": True}
    # It starts once the API has migrated the database.
    assert worker["depends_on"]["dicomgate"] == {"condition": "service_healthy"}
    assert "volumes" not in worker  # nothing shared but Orthanc and the database


def test_the_worker_command_is_one_the_cli_accepts(compose: dict) -> None:
    command = compose["services"]["worker"]["command"]
    default = re.fullmatch(r"\$\{DICOMGATE_WORKER_CONCURRENCY:-(\d+)\}", command[-1])
    assert default, "the concurrency comes from DICOMGATE_WORKER_CONCURRENCY, with a default"
    arguments = build_parser().parse_args([*command[1:-1], default.group(1)])
    assert arguments.concurrency == int(default.group(1))


def test_api_replicas_leave_conversions_to_the_workers_by_default(compose: dict) -> None:
    gate = compose["services"]["dicomgate"]["environment"]
    assert gate["DICOMGATE_IN_PROCESS_WORKER"] == "${DICOMGATE_IN_PROCESS_WORKER:-false}"
    assert Settings.model_fields["in_process_worker"].default is True  # the setting's own default
    assert "DICOMGATE_IN_PROCESS_WORKER" not in compose["services"]["worker"]["environment"]


def test_psycopg_needs_no_system_libpq() -> None:
    """The image installs no libpq: psycopg must be the build that carries its own."""
    import psycopg

    assert psycopg.pq.__impl__ == "binary"
    assert "libpq" not in DOCKERFILE.read_text().rsplit("\nFROM ", 1)[1]


def test_dockerfile_runs_non_root_checks_health_and_starts_a_real_command() -> None:
    text = DOCKERFILE.read_text()
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.M)
    assert users and users[-1] not in ("root", "0")
    healthcheck = re.search(r"^HEALTHCHECK[\s\S]*?CMD (.+)$", text, flags=re.M)
    assert healthcheck and "/api/ris/health/" in healthcheck.group(1)
    cmd = re.search(r'^CMD \["sh", "-c", "(.+)"\]$', text, flags=re.M)
    assert cmd, "CMD should be the migrate-then-serve shell line"
    steps = [shlex.split(step.replace("exec ", "")) for step in cmd.group(1).split("&&")]
    assert [s[:3] for s in steps] == [
        ["dicomgate", "db", "upgrade"],
        ["dicomgate", "serve", "--host"],
    ]
    parser = build_parser()
    for step in steps:
        parser.parse_args(step[1:])  # exits (fails the test) on an option the CLI lacks


def test_compose_runs_the_images_serve_command(compose: dict) -> None:
    """No command/entrypoint override: the container runs the Dockerfile's ``dicomgate serve``,
    which always caps the request head (below), so compose cannot publish it uncapped."""
    gate = compose["services"]["dicomgate"]
    assert "command" not in gate and "entrypoint" not in gate


def test_serve_always_caps_the_request_head(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    import uvicorn

    from dicomgate.cli import main
    from dicomgate.server import BoundedHeadProtocol

    seen: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.update(options))
    monkeypatch.setenv("DICOMGATE_AUTH_ENABLED", "false")
    monkeypatch.setenv("DICOMGATE_MAX_HEADER_BYTES", "32768")
    monkeypatch.setenv("DICOMGATE_DATABASE_URL", settings.database_url)  # a migrated one
    assert main(["serve", "--port", "8123"]) == 0
    protocol = seen["http"]
    assert isinstance(protocol, type) and issubclass(protocol, BoundedHeadProtocol)
    assert protocol.max_head_bytes == 32768
