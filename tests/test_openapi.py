"""The OpenAPI schema the front end generates its client from: valid, stable ids, security."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest
from openapi_spec_validator import validate

from dicomgate.auth.policy import ROUTE_SCOPES


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    """Exported by ``dicomgate openapi``, the way a build pipeline would."""
    proc = subprocess.run(
        [sys.executable, "-m", "dicomgate.cli", "openapi"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), p, op) for p, ops in schema["paths"].items() for m, op in ops.items()]


def test_schema_is_valid_openapi(schema: dict[str, Any]) -> None:
    validate(schema)
    assert schema["info"]["title"] == "dicomgate"


def test_operation_ids_are_unique_camel_case(schema: dict[str, Any]) -> None:
    ids = [op.get("operationId") for _, _, op in operations(schema)]
    assert all(ids), "every operation needs an operationId"
    assert [i for i, n in Counter(ids).items() if n > 1] == []
    assert all(i[0].islower() and "_" not in i for i in ids if i)


def test_every_operation_has_tag_summary_and_documented_security(schema: dict[str, Any]) -> None:
    for method, path, op in operations(schema):
        assert op.get("tags") and op.get("summary"), (method, path)
        scope = ROUTE_SCOPES[(method, path)]
        if scope is None:
            assert "security" not in op, (method, path)
        else:
            assert op["security"] == [{"bearer": [scope]}, {"apiKey": [scope]}], (method, path)
            assert {"401", "403"} <= set(op["responses"]), (method, path)


def test_readme_api_table_lists_every_operation_with_its_scope(schema: dict[str, Any]) -> None:
    """The README's 'API at a glance' is the schema's list of routes, with the policy's scopes."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## API at a glance", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z]+) (\S+)` \| ([a-z:]+) \|", section, flags=re.M)
    documented = {(method, path): scope for method, path, scope in rows}
    expected = {
        (method.upper(), path): ROUTE_SCOPES[(method.upper(), path)] or "public"
        for path, operations in schema["paths"].items()
        for method in operations
    }
    assert documented == expected


def _has_example(schema: dict[str, Any], components: dict[str, Any]) -> bool:
    if "examples" in schema or "example" in schema:
        return True
    if "$ref" in schema:
        return _has_example(components[schema["$ref"].rsplit("/", 1)[1]], components)
    if "anyOf" in schema:
        return all(_has_example(s, components) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return _has_example(schema.get("items", {}), components)
    return False


def test_every_json_answer_has_an_example(schema: dict[str, Any]) -> None:
    """Swagger UI and the front end's developers see a real answer for every success."""
    components = schema["components"]["schemas"]
    missing = [
        f"{method.upper()} {path} {code}"
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        for code, response in operation["responses"].items()
        if code.startswith("2")
        for media, content in response.get("content", {}).items()
        if media.endswith("json")
        and not _has_example(content.get("schema", {}), components)
        and "example" not in content
        and "examples" not in content
    ]
    assert missing == []


def test_every_example_is_valid_for_its_own_model() -> None:
    """An example that drifted from its model would teach the front end the wrong shape."""
    from pydantic import BaseModel

    from dicomgate.app import create_app
    from dicomgate.settings import Settings

    create_app(Settings(auth_enabled=False))  # imports every router, so every model

    def subclasses(cls: type[BaseModel]) -> list[type[BaseModel]]:
        found = []
        for sub in cls.__subclasses__():
            found += [sub, *subclasses(sub)]
        return found

    checked = 0
    for model in subclasses(BaseModel):
        if not model.__module__.startswith("dicomgate."):
            continue
        extra = model.model_config.get("json_schema_extra")
        for example in extra.get("examples", []) if isinstance(extra, dict) else []:
            model.model_validate(example)
            checked += 1
    assert checked >= 10
