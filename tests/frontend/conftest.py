"""The front end's view of the service: Node tooling (tests/frontend/package.json) and Chromium.

The npm project here is test tooling only (private, never published or shipped): the pinned
TypeScript compiler, openapi-typescript and playwright-core that these tests run, installed by
``scripts/setup-tests`` with ``npm ci`` from the committed package-lock.json. Missing tooling
fails the tests, with the fix in the message; it never skips them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FRONTEND_DIR = Path(__file__).resolve().parent
NODE_BIN = FRONTEND_DIR / "node_modules" / ".bin"
CHROMIUM = Path("/usr/bin/chromium")
SETUP_HINT = "run scripts/setup-tests (it installs Node packages with npm ci and Debian's chromium)"


@pytest.fixture(scope="session")
def node() -> str:
    """The ``node`` executable (Node.js ≥ 20)."""
    found = shutil.which("node")
    if found is None:
        pytest.fail(f"node is not installed: install Node.js >= 20, then {SETUP_HINT}")
    return found


@pytest.fixture(scope="session")
def node_bin(node: str) -> Path:
    """``node_modules/.bin`` of tests/frontend, with the pinned tools installed."""
    missing = [
        tool for tool in ("tsc", "openapi-typescript") if not (NODE_BIN / tool).is_file()
    ] + [pkg for pkg in ("playwright-core", "openapi-fetch") if not module_dir(pkg).is_dir()]
    if missing:
        pytest.fail(f"tests/frontend tooling missing ({', '.join(missing)}): {SETUP_HINT}")
    return NODE_BIN


def module_dir(package: str) -> Path:
    return FRONTEND_DIR / "node_modules" / package


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium (never a browser downloaded by a test tool)."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: {SETUP_HINT}")
    return CHROMIUM
