"""Load the OpenAPI contract and turn its response schemas into JSON Schema validators."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

SPEC_PATH = Path(__file__).resolve().parents[2] / "spec" / "openapi.yaml"


@functools.cache
def load_spec() -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(SPEC_PATH) as f:
        return yaml.load(f, Loader=loader)


def to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema: `nullable: true` becomes an explicit null."""
    if isinstance(node, list):
        return [to_json_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items()
           if k not in ("nullable", "example", "examples", "x-runtime", "discriminator", "xml")}
    if node.get("nullable") is True:
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        elif "type" not in out:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


@functools.cache
def _components() -> dict:
    return to_json_schema(load_spec().get("components", {}))


def operation(method: str, path: str) -> dict:
    return load_spec()["paths"][path][method.lower()]


def listed_statuses(method: str, path: str) -> set[int]:
    return {int(code) for code in operation(method, path)["responses"] if code.isdigit()}


def response_validator(method: str, path: str, status: int) -> Draft202012Validator | None:
    """The validator for a JSON response with this status, or None when the spec gives none."""
    response = operation(method, path)["responses"].get(str(status))
    if not response:
        return None
    if "$ref" in response:  # a shared response component
        name = response["$ref"].rsplit("/", 1)[-1]
        response = load_spec()["components"]["responses"][name]
    schema = (response.get("content") or {}).get("application/json", {}).get("schema")
    if schema is None:
        return None
    # Refs are "#/components/...": resolve them against a root that carries the components.
    root = {**to_json_schema(schema), "components": _components()}
    return Draft202012Validator(root)
