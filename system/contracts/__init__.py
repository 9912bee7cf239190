"""Versioned JSON Schemas (Draft 2020-12) for every message that crosses a boundary.

Layout: `system/contracts/<family...>/<version>/<name>.json`, e.g. `ws/1.0/user_message.json`.
Frozen versions are never edited; a change is a new version directory.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from jsonschema import Draft202012Validator

ROOT = Path(__file__).parent


def schema_path(family: str, version: str, name: str) -> Path:
    return ROOT / family / version / f"{name}.json"


@lru_cache(maxsize=None)
def load_schema(family: str, version: str, name: str) -> dict:
    path = schema_path(family, version, name)
    if not path.is_file():
        raise KeyError(f"no schema {family}/{version}/{name} (looked for {path})")
    return json.loads(path.read_text())


@lru_cache(maxsize=None)
def validator(family: str, version: str, name: str) -> Draft202012Validator:
    schema = load_schema(family, version, name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_names(family: str, version: str) -> list[str]:
    return sorted(p.stem for p in (ROOT / family / version).glob("*.json"))
