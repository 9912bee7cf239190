"""The agent contracts (JSON Schemas under system/contracts/agent/) and their validators."""
from __future__ import annotations

import functools
import json
from pathlib import Path

from jsonschema import Draft202012Validator

CONTRACTS = Path(__file__).resolve().parent.parent / "contracts" / "agent"
VERSIONS = ("1.0", "1.1")
LATEST = VERSIONS[-1]


class ContractError(ValueError):
    """A request or response that breaks its schema; the message names the field."""


@functools.cache
def validator(kind: str, version: str, agent: str = "real_estate") -> Draft202012Validator:
    """`kind` is request or response."""
    path = CONTRACTS / agent / version / f"{kind}.json"
    if not path.is_file():
        raise ContractError(f"no {agent} {kind} contract for version {version!r} "
                            f"(expected {path}; known versions: {', '.join(VERSIONS)})")
    schema = json.loads(path.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def check(kind: str, version: str, document: dict, agent: str = "real_estate") -> None:
    """Raise ContractError naming the first offending field."""
    error = next(iter(sorted(validator(kind, version, agent).iter_errors(document), key=lambda e: e.path)), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ContractError(f"{agent} {kind} v{version}: {where}: {error.message}")
