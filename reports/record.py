"""Reading run-record directories for the report, tolerating anything missing or damaged.

A report is most wanted when a run went wrong, so a missing or unreadable file never
stops it: the file is left out, its sections are skipped, and a note says which file
and why. Only a directory that holds no run record at all is an error.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from formats.record.tables import read_table
from formats.scenario.fixes import profile_label
from system.units import parse_duration

RECORD_FILES = (
    "summary.json", "gates.json", "connections.csv", "timeseries.csv", "ledger.csv",
    "ledger_summary.json", "faults.json", "meta.json", "scenario.json",
)
# Columns a section cannot do without; other columns are optional.
REQUIRED_COLUMNS = {
    "connections.csv": ("duration_s", "censored"),
    "timeseries.csv": ("t",),
    "ledger.csv": ("kind", "client", "conversation", "msg_id", "seq", "t"),
}

# Columns that hold numbers (every column of timeseries.csv does).
NUMERIC_COLUMNS = {
    "connections.csv": ("opened_s", "closed_s", "duration_s", "close_code", "http_status", "censored"),
    "ledger.csv": ("seq", "t"),
}


class RecordError(ValueError):
    """A path given as a run record holds none of its files (names the path and what was expected)."""


@dataclass
class Run:
    """One run record as the report sees it; any part may be None when its file was absent or bad."""

    path: Path
    summary: dict[str, Any] | None = None
    gates: list[dict[str, Any]] | None = None
    prometheus_gates: list[dict[str, Any]] | None = None  # optional: a Prometheus scraped the run
    connections: pd.DataFrame | None = None
    timeseries: pd.DataFrame | None = None
    ledger: pd.DataFrame | None = None
    ledger_summary: dict[str, Any] | None = None
    faults: list[dict[str, Any]] | None = None
    meta: dict[str, Any] | None = None
    scenario: dict[str, Any] | None = None
    duration_s: float | None = None  # scenario seconds, see _duration()
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.path.name or str(self.path)

    @property
    def engine(self) -> str:
        for source in (self.meta, self.summary):
            if source and isinstance(source.get("engine"), str):
                return source["engine"]
        return "unknown"

    @property
    def scenario_name(self) -> str:
        if self.scenario and isinstance(self.scenario.get("name"), str):
            return self.scenario["name"]
        if self.summary and isinstance(self.summary.get("scenario"), str):
            return self.summary["scenario"]
        return self.label

    @property
    def profile(self) -> str:
        """`legacy`, `fixed`, or the base with its fixes (`legacy+refresh_before_reconnect`)."""
        if self.meta and isinstance(self.meta.get("profile"), str):
            return self.meta["profile"]
        fleet = (self.scenario or {}).get("fleet") or {}
        profile = fleet.get("profile") if isinstance(fleet, dict) else None
        if isinstance(profile, str):
            return profile
        if isinstance(profile, dict):
            return profile_label(self.scenario or {})
        return "unknown"

    @property
    def clients(self) -> int | None:
        if self.summary and isinstance(self.summary.get("clients"), (int, float)):
            return int(self.summary["clients"])
        return None

    @property
    def scenario_gates(self) -> list[dict[str, Any]]:
        gates = (self.scenario or {}).get("gates")
        return [g for g in gates if isinstance(g, dict)] if isinstance(gates, list) else []


def is_sweep(path: Path) -> bool:
    return (path / "sweep.json").is_file()


def holds_record(path: Path) -> bool:
    """A run record or a sweep: what `render` accepts as one of its paths."""
    return path.is_dir() and (is_sweep(path) or any((path / name).is_file() for name in RECORD_FILES))


def expand(paths: list[Path], depth: int = 3) -> list[Path]:
    """Each path as given, except a directory that holds no record but whose subdirectories do (a
    main job's `legacy/` and `fixed/`, a folder of runs, `runs/` itself): it stands for the records
    found below it, `depth` levels down at most, in name order."""
    out: list[Path] = []
    for path in map(Path, paths):
        found = _records_below(path, depth) if path.is_dir() and not holds_record(path) else []
        out.extend(found or [path])
    return out


def _records_below(path: Path, depth: int) -> list[Path]:
    if depth <= 0:
        return []
    found: list[Path] = []
    for child in sorted(c for c in path.iterdir() if c.is_dir()):
        found.extend([child] if holds_record(child) else _records_below(child, depth - 1))
    return found


def load_run(path: Path) -> Run:
    """Read every run-record file present in `path`; raises RecordError when none is."""
    path = Path(path)
    if not path.is_dir():
        raise RecordError(f"{path}: not a directory (expected a run-record directory)")
    present = [name for name in RECORD_FILES if (path / name).is_file()]
    if not present:
        raise RecordError(
            f"{path}: no run-record files found (expected some of {', '.join(RECORD_FILES)}, or sweep.json)"
        )
    run = Run(path=path)
    run.summary = _json(run, "summary.json", dict)
    run.gates = _json(run, "gates.json", list)
    run.prometheus_gates = _json(run, "prometheus_gates.json", list)
    run.ledger_summary = _json(run, "ledger_summary.json", dict)
    run.faults = _json(run, "faults.json", list)
    run.meta = _json(run, "meta.json", dict)
    run.scenario = _json(run, "scenario.json", dict)
    run.connections = _csv(run, "connections.csv")
    run.timeseries = _csv(run, "timeseries.csv")
    run.ledger = _csv(run, "ledger.csv")
    run.duration_s = _duration(run)
    absent = [name for name in RECORD_FILES if name not in present]
    if "ledger.csv" in present or "ledger_summary.json" in present:
        absent = [name for name in absent if name not in ("ledger.csv", "ledger_summary.json")]
    run.notes[:0] = [f"{name}: missing" for name in absent]
    return run


def _duration(run: Run) -> float | None:
    """Scenario duration: from the resolved scenario, else the extent of the time series."""
    raw = (run.scenario or {}).get("duration")
    if raw is not None:
        try:
            return parse_duration(raw)
        except ValueError:
            run.notes.append(f"scenario.json: field 'duration' is {raw!r}, expected a duration such as '24h'")
    if run.timeseries is not None and len(run.timeseries):
        return float(run.timeseries["t"].max()) + 1.0
    return None


def read_json(path: Path, expected: type, notes: list[str]) -> Any:
    """JSON of the expected top-level type, or None with a note naming the file and the problem."""
    if not path.is_file():
        notes.append(f"{path.name}: missing")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        notes.append(f"{path.name}: unreadable ({exc})")
        return None
    except json.JSONDecodeError as exc:
        notes.append(f"{path.name}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})")
        return None
    if not isinstance(data, expected):
        kind = "an object" if expected is dict else "a list"
        notes.append(f"{path.name}: expected {kind} at the top level, found {type(data).__name__}")
        return None
    return data


def _json(run: Run, name: str, expected: type) -> Any:
    file = run.path / name
    return read_json(file, expected, run.notes) if file.is_file() else None


def _csv(run: Run, name: str) -> pd.DataFrame | None:
    file = run.path / name
    if not file.is_file():
        return None
    try:
        frame = read_table(file)
    except pd.errors.EmptyDataError:
        run.notes.append(f"{name}: empty file (expected a header row)")
        return None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        run.notes.append(f"{name}: unreadable CSV ({exc})")
        return None
    missing = [c for c in REQUIRED_COLUMNS.get(name, ()) if c not in frame.columns]
    if missing:
        run.notes.append(
            f"{name}: missing column(s) {', '.join(missing)} "
            f"(expected at least {', '.join(REQUIRED_COLUMNS[name])})"
        )
        return None
    return _numeric(run, name, frame)


def _numeric(run: Run, name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Numbers where the format has numbers: a damaged cell becomes a gap with a note, and a row
    without its time (`t`) is left out, rather than one bad value stopping the report."""
    columns = [c for c in frame.columns if name == "timeseries.csv" or c in NUMERIC_COLUMNS.get(name, ())]
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = int((values.isna() & frame[column].notna()).sum())
        if bad:
            run.notes.append(f"{name}: {bad} non-numeric value(s) in column {column} read as missing")
        frame[column] = values
    if "t" in frame.columns:
        unusable = int(frame["t"].isna().sum())
        if unusable:
            run.notes.append(f"{name}: {unusable} row(s) without a time (column t) left out")
            frame = frame[frame["t"].notna()].reset_index(drop=True)
    return frame


def number(value: Any) -> float | None:
    """A finite float from a JSON value, else None (a null quantile stays unknown)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
