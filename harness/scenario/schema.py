"""Validation against the published scenario schema, with errors a user can act on.

jsonschema's own messages name the failing keyword, not what the field wants; the
schema carries a `description` on every user-facing definition, so an error reads
"file: $.faults[2].latency: expected a duration such as '30s' ..., got 'fast'".
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

from system.errors import UsageError

MAX_REPORTED = 8
# A JSON type as a YAML writer thinks of it (for fields whose schema has no description).
TYPE_WORDS = {"object": "a mapping of fields (key: value)", "array": "a list", "string": "text",
              "boolean": "true or false", "integer": "a whole number", "number": "a number"}


@lru_cache(maxsize=1)
def scenario_schema() -> dict:
    return json.loads(resources.files("scenarios").joinpath("scenario.schema.json").read_text())


@lru_cache(maxsize=4)
def _validator(definition: str | None) -> jsonschema.protocols.Validator:
    schema = scenario_schema()
    if definition is not None:
        # Validate against one definition while keeping `#/$defs/...` references resolvable.
        schema = {**schema, "$ref": f"#/$defs/{definition}"}
        for key in ("required", "properties", "additionalProperties", "type"):
            schema.pop(key, None)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _leaf(error: ValidationError) -> ValidationError:
    """The most specific error: descend into a oneOf unless the failure is the field itself and the schema says what it expects."""
    while error.context:
        best = max(error.context, key=lambda e: len(e.absolute_path))
        if len(best.absolute_path) == len(error.absolute_path):
            best = jsonschema.exceptions.best_match(error.context)
        deeper = len(best.absolute_path) > len(error.absolute_path)
        if not deeper and isinstance(error.schema, dict) and "description" in error.schema:
            break
        error = best
    return error


def _describe(error: ValidationError) -> str:
    path = error.json_path
    if error.validator == "required":
        return f"{path}: {error.message}"
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        return f"{path}: {error.message}"
    described = error.schema.get("description") if isinstance(error.schema, dict) else None
    parent = error.parent
    if (described is None and parent is not None and isinstance(parent.schema, dict)
            and parent.absolute_path == error.absolute_path):  # an outer field's description is not this one's
        described = parent.schema.get("description")
    if described is None and error.validator == "type" and isinstance(error.validator_value, str):
        described = TYPE_WORDS.get(error.validator_value)
    if described is not None:
        return f"{path}: expected {described}, got {error.instance!r}"
    return f"{path}: {error.message}"


def validate(document: Any, source: str, definition: str | None = None) -> None:
    """Raise UsageError naming `source`, the JSON path of each bad field and what was expected."""
    errors = sorted(_validator(definition).iter_errors(document), key=lambda e: list(map(str, e.path)))
    if not errors:
        return
    lines = [_describe(_leaf(e)) for e in errors[:MAX_REPORTED]]
    more = f"\n  (and {len(errors) - MAX_REPORTED} more)" if len(errors) > MAX_REPORTED else ""
    raise UsageError(f"{source}: invalid scenario:\n  " + "\n  ".join(dict.fromkeys(lines)) + more)
