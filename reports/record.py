"""The report's view of run records: each is read by the shared reader (`formats.record.run`) in its
lenient mode, since a report is most wanted when a run went wrong: a missing or damaged file never
stops it, the file is left out, its sections are skipped, and a note says which file and why.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from formats.record import files, passes
from formats.record.passes import Lifetimes
from formats.record.run import RunRecord, present
from formats.scenario.fixes import profile_label
from system.units import parse_duration


@dataclass
class Run:
    """One run record as the report sees it; any part may be None when its file was absent or bad
    (`notes` says which and why)."""

    path: Path
    summary: dict[str, Any] | None = None
    gates: list[dict[str, Any]] | None = None
    prometheus_gates: list[dict[str, Any]] | None = None  # optional: a Prometheus scraped the run
    lifetimes: Lifetimes | None = None  # every connection with a duration; None without any (see _lifetimes)
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
    return path.is_dir() and (is_sweep(path) or bool(present(path)))


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
    """Every part of the record in `path`, read now so that `notes` is complete before the report
    is written; raises RecordError when `path` holds no record file."""
    record = RunRecord(path, lenient=True)
    run = Run(path=record.dir, summary=record.document(files.SUMMARY), gates=record.document(files.GATES, list),
              prometheus_gates=record.document(files.PROMETHEUS_GATES, list), ledger_summary=record.ledger_summary,
              faults=record.document(files.FAULTS, list), meta=record.document(files.META),
              scenario=record.document(files.SCENARIO), lifetimes=_lifetimes(record),
              timeseries=record.timeseries, ledger=record.ledger, notes=record.notes)
    run.duration_s = _duration(run)
    return run


def _lifetimes(record: RunRecord) -> Lifetimes | None:
    """The lifetimes the survival plot shows, read a chunk at a time (a fleet's table has tens of
    millions of rows: never the whole table, nor its text); None when connections.csv is absent,
    damaged or holds no duration, as when it was read whole."""
    lived = passes.timed(record)
    return None if files.CONNECTIONS in record.unreadable or not lived.durations.size else lived


def _duration(run: Run) -> float | None:
    """Scenario duration: from the resolved scenario, else the extent of the time series."""
    raw = (run.scenario or {}).get("duration")
    if raw is not None:
        try:
            return parse_duration(raw)
        except ValueError:
            run.notes.append(f"{files.SCENARIO}: field 'duration' is {raw!r}, expected a duration such as '24h'")
    if run.timeseries is not None and len(run.timeseries):
        return float(run.timeseries["t"].max()) + 1.0
    return None


def number(value: Any) -> float | None:
    """A finite float from a JSON value, else None (a null quantile stays unknown)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
