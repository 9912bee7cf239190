"""Writing the raw material of a run record: what an engine calls while it runs.

Events and scrapes are appended line by line (a crash keeps what was written so
far); `meta.json`, `faults.json` and `scenario.json` are written whole. Derived
tables are `finalize`'s job, not the writer's.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping

from formats.record.files import (
    EVENTS, FAULTS, META, RECEIVED, RECEIVED_COLUMNS, SCENARIO, SCRAPES, SENT, SENT_COLUMNS,
)


def _jsonable(value: Any) -> Any:
    """NaN and infinities as strings, so every line stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class RecordWriter:
    """`with RecordWriter(out_dir) as rec: rec.event({...}); rec.sent(...); ...`"""

    def __init__(self, out_dir: str | Path):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._events = (self.dir / EVENTS).open("w", encoding="utf-8")
        self._sent_file = (self.dir / SENT).open("w", encoding="utf-8", newline="")
        self._sent = csv.writer(self._sent_file)
        self._sent.writerow(SENT_COLUMNS)
        self._received_file = (self.dir / RECEIVED).open("w", encoding="utf-8", newline="")
        self._received = csv.writer(self._received_file)
        self._received.writerow(RECEIVED_COLUMNS)
        self._scrapes = None
        self._meta: dict[str, Any] = {}
        self.closed = False

    def event(self, record: Mapping[str, Any]) -> None:
        """One client or harness event record: `{"t", "client", "kind", ...}` (t in scenario seconds)."""
        self._events.write(json.dumps(record, separators=(",", ":"), default=_jsonable) + "\n")

    def events(self, records: Iterable[Mapping[str, Any]]) -> None:
        for record in records:
            self.event(record)

    def sent(self, conversation: str, msg_id: str, seq: int, t: float) -> None:
        """One message the server sent (its delivery log)."""
        self._sent.writerow((conversation, msg_id, seq, t))

    def received(self, conversation: str, msg_id: str, t: float, answered: bool) -> None:
        """One user message the server received (`answered` False: a resend it dropped)."""
        self._received.writerow((conversation, msg_id, t, int(answered)))

    def scrape(self, t: float, samples: list[Mapping[str, Any]]) -> None:
        """One `/metrics` scrape at scenario time `t`: samples `{"name","labels","value"}`."""
        if self._scrapes is None:
            self._scrapes = (self.dir / SCRAPES).open("w", encoding="utf-8")
        line = {"t": t, "samples": [{**s, "value": _jsonable(s["value"])} for s in samples]}
        self._scrapes.write(json.dumps(line, separators=(",", ":")) + "\n")

    def faults(self, realized: list[Mapping[str, Any]]) -> None:
        """The realized schedule `[{"at","for","kind","params","targets"}]` (objects with `to_dict` accepted)."""
        rows = [f.to_dict() if hasattr(f, "to_dict") else dict(f) for f in realized]
        _write_json(self.dir / FAULTS, rows)

    def scenario(self, scenario: Any) -> None:
        write_scenario(self.dir, scenario)

    def meta(self, fields: Mapping[str, Any]) -> None:
        """Merge fields into `meta.json` (written now and again on close, so a crash keeps it)."""
        self._meta.update(fields)
        _write_json(self.dir / META, self._meta)

    def flush(self) -> None:
        self._events.flush()
        self._sent_file.flush()
        self._received_file.flush()
        if self._scrapes is not None:
            self._scrapes.flush()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for f in (self._events, self._sent_file, self._received_file, self._scrapes):
            if f is not None:
                f.close()
        if self._meta:
            _write_json(self.dir / META, self._meta)

    def __enter__(self) -> "RecordWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def merge_meta(out_dir: str | Path, fields: Mapping[str, Any]) -> None:
    """Merge fields into a finished record's `meta.json` (what a command learns after the engine)."""
    path = Path(out_dir) / META
    meta = json.loads(path.read_text()) if path.exists() else {}
    _write_json(path, {**meta, **fields})


def write_scenario(out_dir: str | Path, scenario: Any) -> None:
    """The resolved scenario (a `Scenario` or its dict) as `scenario.json`."""
    _write_json(Path(out_dir) / SCENARIO, scenario.to_dict() if hasattr(scenario, "to_dict") else dict(scenario))


def _write_json(path: Path, value: Any) -> None:
    write_atomic(path, json.dumps(value, indent=2, default=_jsonable) + "\n")


def write_atomic(path: str | Path, text: str) -> None:
    """Replace `path` whole or not at all: a crash or Ctrl-C mid-write leaves the earlier file."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def tool_version() -> str:
    """The installed stormbench version, for `meta.json` (`unknown` when run from a bare checkout)."""
    try:
        from importlib.metadata import version
        return version("stormbench")
    except Exception:
        return "unknown"
