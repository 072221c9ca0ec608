"""A TypeScript front end generated from ``dicomgate openapi`` compiles, and its types are real.

The schema is exported by the CLI, turned into ``api.d.ts`` by openapi-typescript, and
tests/frontend/usage.ts (the calls a browser app makes: study rows, patient search, uploads,
the error body, conversions, health) is compiled with ``tsc --noEmit --strict`` against it.
Each negative case changes one line of usage.ts to read a field that does not exist (or to
expect a wrong literal type) and must make tsc fail with that one error: proof that the
generated types are precise, not ``any``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

FRONTEND_DIR = Path(__file__).resolve().parent
USAGE = FRONTEND_DIR / "usage.ts"


@pytest.fixture(scope="module")
def schema_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``dicomgate openapi > schema.json``, the way a front end's build exports it."""
    proc = subprocess.run(
        [sys.executable, "-m", "dicomgate.cli", "openapi"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    path = tmp_path_factory.mktemp("openapi") / "schema.json"
    path.write_text(proc.stdout, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def api_types(schema_file: Path, node: str, node_bin: Path) -> Path:
    """``openapi-typescript schema.json -o api.d.ts`` (the pinned local copy, never fetched)."""
    out = schema_file.parent / "api.d.ts"
    proc = subprocess.run(
        [node, str(node_bin / "openapi-typescript"), str(schema_file), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def typecheck(workdir: Path, usage_source: str, api_types: Path, node: str, node_bin: Path) -> Any:
    """Compile ``usage.ts`` beside ``api.d.ts`` with the project's tsconfig, strict, no output."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "usage.ts").write_text(usage_source, encoding="utf-8")
    (workdir / "api.d.ts").write_bytes(api_types.read_bytes())
    # usage.ts imports openapi-fetch as a front end does: resolve it from the pinned install.
    (workdir / "node_modules").symlink_to(FRONTEND_DIR / "node_modules", target_is_directory=True)
    tsconfig = {
        "extends": str(FRONTEND_DIR / "tsconfig.json"),
        "files": ["usage.ts", "api.d.ts"],
    }
    (workdir / "tsconfig.json").write_text(json.dumps(tsconfig), encoding="utf-8")
    tsc = [node, str(node_bin / "tsc"), "-p", str(workdir / "tsconfig.json")]
    return subprocess.run(
        [*tsc, "--noEmit", "--strict", "--pretty", "false"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=workdir,
    )


def test_types_name_every_operation(schema_file: Path, api_types: Path) -> None:
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    generated = api_types.read_text(encoding="utf-8")
    operation_ids = [op["operationId"] for ops in schema["paths"].values() for op in ops.values()]
    assert len(operation_ids) >= 20
    assert [i for i in operation_ids if f"\n    {i}: {{\n" not in generated] == []
    assert "ErrorBody: {" in generated and "success: false;" in generated


def test_usage_compiles_strict(api_types: Path, node: str, node_bin: Path, tmp_path: Path) -> None:
    proc = typecheck(tmp_path, USAGE.read_text(encoding="utf-8"), api_types, node, node_bin)
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


# (line of usage.ts, its replacement, the one tsc error that must follow)
WRONG_USAGES = {
    "study row field that does not exist": (
        "seriesCount: study.seriesCount,",
        "seriesCount: study.NoSuchField,",
        "error TS2339: Property 'NoSuchField' does not exist on type '{ orthancId: string;",
    ),
    "upload result field that does not exist": (
        "${r.orthanc_response.ID}",
        "${r.orthanc_response.NoSuchField}",
        "error TS2339: Property 'NoSuchField' does not exist on type '{ ID: string;",
    ),
    "error body success is the literal false": (
        "const success: false = body.success;",
        "const success: true = body.success;",
        "error TS2322: Type 'false' is not assignable to type 'true'.",
    ),
    "patient gender is the schema's enum": (
        'case "unknown":\n      return "U";\n',
        "",
        """error TS2322: Type '"unknown"' is not assignable to type 'never'.""",
    ),
}


@pytest.mark.parametrize("case", list(WRONG_USAGES))
def test_wrong_usage_fails_to_compile(
    case: str, api_types: Path, node: str, node_bin: Path, tmp_path: Path
) -> None:
    original, replacement, expected_error = WRONG_USAGES[case]
    source = USAGE.read_text(encoding="utf-8")
    assert source.count(original) == 1, f"usage.ts no longer contains {original!r}"
    proc = typecheck(tmp_path, source.replace(original, replacement), api_types, node, node_bin)
    errors = [line for line in proc.stdout.splitlines() if ": error TS" in line]
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert len(errors) == 1, errors
    assert errors[0].startswith("usage.ts(") and expected_error in errors[0], errors[0]


def test_every_error_answer_is_the_error_body(schema_file: Path) -> None:
    """One error handler in the front end: every 4xx/5xx of the ``/api/`` routes is ``ErrorBody``
    (health's 503 is the report itself), including 422s, which FastAPI would otherwise document
    as its own ``{"detail": [...]}``. (Standard protocols such as DICOMweb answer their own.)"""
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    other = []
    for path, operations in schema["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, op in operations.items():
            for code, response in op["responses"].items():
                if not code.startswith(("4", "5")):
                    continue
                body = response.get("content", {}).get("application/json", {}).get("schema")
                if body != {"$ref": "#/components/schemas/ErrorBody"}:
                    other.append((method.upper(), path, code, body))
    health_503 = {"$ref": "#/components/schemas/HealthReport"}
    assert other == [("GET", "/api/ris/health/", "503", health_503)]
