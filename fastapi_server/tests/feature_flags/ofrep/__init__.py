"""The vendored OFREP OpenAPI spec (0.3.0, see SOURCE.md) and a validator of responses."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import yaml

SPEC_PATH = Path(__file__).with_name("openapi.yaml")
VALUE_SCHEMAS = ("booleanFlag", "stringFlag", "integerFlag", "floatFlag", "objectFlag")


@cache
def spec() -> dict[str, Any]:
    """The spec as published, parsed."""
    loaded: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
    return loaded


@cache
def _components(with_value: bool) -> dict[str, Any]:
    # The spec's value oneOf cannot be satisfied by a response with a value (SOURCE.md).
    components: dict[str, Any] = copy.deepcopy(spec()["components"])
    success = components["schemas"]["evaluationSuccess"]
    refs = VALUE_SCHEMAS if with_value else ("codeDefaultFlag",)
    success["allOf"][1] = {"anyOf": [{"$ref": f"#/components/schemas/{n}"} for n in refs]}
    return components


def validate(schema: str, instance: Any) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``instance`` fits the spec's ``schema``."""
    items = instance.get("flags", []) if isinstance(instance, dict) else []
    with_value = "value" in instance or any("value" in item for item in items)
    root = {"$ref": f"#/components/schemas/{schema}", "components": _components(with_value)}
    jsonschema.Draft202012Validator(root).validate(instance)
    for item in items:  # each flag of a bulk answer with its own kind of value
        kind = {"$ref": "#/components/schemas/evaluationSuccess"}
        if "errorCode" in item:
            kind = {"$ref": "#/components/schemas/evaluationFailure"}
        each = {**kind, "components": _components("value" in item)}
        jsonschema.Draft202012Validator(each).validate(item)


def response_schema(path: str, status: int) -> str | None:
    """The name of the schema the spec gives ``path``'s POST answer of ``status``."""
    answer = spec()["paths"][path]["post"]["responses"][str(status)]
    content = answer.get("content")
    if content is None:
        return None
    ref: str = content["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[1]
