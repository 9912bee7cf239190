"""Validation against the published scenario schema, with errors a user can act on.

jsonschema's own messages name the failing keyword, not what the field wants; the
schema carries a `description` on every user-facing definition, so an error reads
"file: $.faults[2].latency: expected a duration such as '30s' ..., got 'fast'".
"""
from __future__ import annotations

import difflib
import json
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping

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


def _fields(schema: Any, instance: Any) -> set[str]:
    """The fields a mapping may hold: its own `properties` and those of every `allOf` `if`/`then`
    branch that applies to it (a fault's kind-specific parameters)."""
    if not isinstance(schema, dict):
        return set()
    fields = set(schema.get("properties") or {})
    for branch in schema.get("allOf") or []:
        if isinstance(branch, dict) and "if" in branch and jsonschema.validators.validator_for(
                branch["if"])(branch["if"]).is_valid(instance):
            fields |= set((branch.get("then") or {}).get("properties") or {})
    return fields


def _unknown_keys(error: ValidationError, lines: Mapping[tuple, int]) -> str:
    """`line 12: $.fleet.sim_client: unknown field (did you mean 'sim_clients'?); expected one of ...`"""
    known = sorted(_fields(error.schema, error.instance))
    extra = [k for k in error.instance if k not in known] if isinstance(error.instance, dict) else []
    out = []
    for key in extra:
        where = tuple(error.absolute_path) + (key,)
        line = f"line {lines[where]}: " if where in lines else ""
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        dotted = error.json_path + (f".{key}" if error.json_path else f"$.{key}")
        out.append(f"{line}{dotted}: unknown field{hint}; expected one of {', '.join(known)}")
    return "\n  ".join(out) or f"{error.json_path}: {error.message}"


def _describe(error: ValidationError, lines: Mapping[tuple, int]) -> str:
    path = error.json_path
    if error.validator == "required":
        return f"{path}: {error.message}"
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        return _unknown_keys(error, lines)
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


def validate(document: Any, source: str, definition: str | None = None,
             lines: Mapping[tuple, int] | None = None) -> None:
    """Raise UsageError naming `source`, the JSON path of each bad field and what was expected;
    `lines` (key path -> line in the file) lets an unknown key be named by its line."""
    errors = sorted(_validator(definition).iter_errors(document), key=lambda e: list(map(str, e.path)))
    if not errors:
        return
    said = [_describe(_leaf(e), lines or {}) for e in errors[:MAX_REPORTED]]
    more = f"\n  (and {len(errors) - MAX_REPORTED} more)" if len(errors) > MAX_REPORTED else ""
    raise UsageError(f"{source}: invalid scenario:\n  " + "\n  ".join(dict.fromkeys(said)) + more)
