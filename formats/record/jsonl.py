"""Reading the append-only JSON-lines files of a run record (`events.jsonl`, `scrapes.jsonl`).

They are written line by line while a run goes on, so a process killed mid-write leaves its last
line cut off: that line is left out with a warning and everything before it is kept. A bad line
anywhere else is damage, and an error naming the file and line.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

from system.errors import UsageError


def read_jsonl(path: Path, check: Callable[[Any], None] | None = None, expected: str = "a JSON object"
               ) -> Iterator[Any]:
    """Each line's value; `check(value)` raises ValueError, KeyError or TypeError for a bad one."""
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
                if check is not None:
                    check(value)
            except (ValueError, KeyError, TypeError) as exc:
                if not line.endswith("\n") and not f.read(1):
                    print(f"warning: {path}:{lineno}: the last line is cut off (the run stopped while writing "
                          f"it); left out", file=sys.stderr)
                    return
                raise UsageError(f"{path}:{lineno}: expected {expected}, got {line[:80]!r} "
                                 f"(missing or bad: {exc})") from None
            yield value
