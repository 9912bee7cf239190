"""Verdicts (pass / fail / unknown with provenance), `gates.json`, and the exit code they imply."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from formats.record.writer import write_atomic

PASS, FAIL, UNKNOWN = "pass", "fail", "unknown"
EXIT_OK, EXIT_FAIL, EXIT_UNKNOWN = 0, 1, 3


@dataclass
class Verdict:
    name: str
    verdict: str                          # pass | fail | unknown
    strict: bool
    observed: float | None
    op: str
    threshold: float | list[float] | None
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def exit_code(verdicts: Iterable[Verdict]) -> int:
    """1 when a strict gate failed, else 3 when a strict gate is unknown, else 0; advisory gates never count."""
    strict = [v for v in verdicts if v.strict]
    if any(v.verdict == FAIL for v in strict):
        return EXIT_FAIL
    if any(v.verdict == UNKNOWN for v in strict):
        return EXIT_UNKNOWN
    return EXIT_OK


def verdicts_document(verdicts: list[Verdict]) -> dict[str, Any]:
    """The verdict part of a `--json` document: the overall outcome and every gate."""
    code = exit_code(verdicts)
    outcome = {EXIT_OK: PASS, EXIT_FAIL: FAIL, EXIT_UNKNOWN: UNKNOWN}[code]
    return {"outcome": outcome, "gates_exit_code": code, "verdicts": [v.to_dict() for v in verdicts]}


def write_gates_json(verdicts: list[Verdict], path: str | Path) -> None:
    write_atomic(path, json.dumps([v.to_dict() for v in verdicts], indent=2, default=str) + "\n")


def read_gates_json(path: str | Path) -> list[Verdict]:
    return [Verdict(**row) for row in json.loads(Path(path).read_text())]
