"""One registry of fault kinds: each engine has exactly one handler per registered kind, and every
list of kinds (the schema, the gate parser's phases) is the registry's."""
from __future__ import annotations

import json
from pathlib import Path

from harness.emulate.faults import HANDLERS
from formats.faults import FAULT_KINDS, REGISTRY
from sim.faults import KINDS

SCHEMA = Path(__file__).resolve().parents[2] / "scenarios" / "scenario.schema.json"


def test_each_engine_handles_every_registered_kind() -> None:
    assert sorted(HANDLERS) == sorted(REGISTRY)
    assert sorted(KINDS) == sorted(REGISTRY)


def test_the_schema_lists_the_registry() -> None:
    schema = json.loads(SCHEMA.read_text())
    assert tuple(schema["$defs"]["fault"]["properties"]["kind"]["enum"]) == FAULT_KINDS
