"""Capacity from a sweep: per setting of the other parameters, the largest fleet that passes.

A sweep directory holds `sweep.json`: `{"scenario", "vary": {param: [values]}, "points":
[{"params": {param: value}, "summary": {...}, "gates": [verdicts], "run_dir": "..."}]}`;
a point may give `run_dir` (relative to the sweep) instead of inline `summary`/`gates`.
The fleet parameter is the varied one naming clients (`fleet.sim_clients` first).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reports.record import RecordError, number, read_json

FLEET_PARAMS = ("fleet.sim_clients", "fleet.clients")
METRIC_KEYS = ("peak_reconnects_per_s", "reconnect_attempts")


@dataclass(frozen=True)
class Point:
    fleet: float
    metric: float
    passed: bool              # no strict gate failed
    failed_gates: tuple[str, ...]


@dataclass(frozen=True)
class Setting:
    label: str                # e.g. "client.max_delay=30, client.jitter=full"
    params: dict[str, Any]
    points: list[Point]       # ascending fleet size

    @property
    def capacity(self) -> float | None:
        """Largest fleet tried before the first failing one; None if the smallest already fails."""
        best = None
        for point in self.points:
            if not point.passed:
                break
            best = point.fleet
        return best


@dataclass(frozen=True)
class Sweep:
    path: Path
    scenario: str
    fleet_param: str
    metric_key: str
    settings: list[Setting]
    notes: list[str]

    def recommended(self) -> Setting | None:
        """The setting that holds the largest fleet (first listed on a tie)."""
        ranked = [s for s in self.settings if s.capacity is not None]
        return max(ranked, key=lambda s: s.capacity) if ranked else None


def load_sweep(path: Path) -> Sweep:
    notes: list[str] = []
    data = read_json(path / "sweep.json", dict, notes)
    if data is None:
        raise RecordError(f"{path / 'sweep.json'}: {notes[-1].split(': ', 1)[1]}")
    points = data.get("points")
    if not isinstance(points, list) or not points:
        raise RecordError(f"{path / 'sweep.json'}: field 'points' must be a non-empty list of sweep points")
    varied = list(data.get("vary") or {}) if isinstance(data.get("vary"), dict) else []
    given = [k for p in points if isinstance(p, dict) and isinstance(p.get("params"), dict) for k in p["params"]]
    names = list(dict.fromkeys(varied + given))
    fleet_param = next((f for f in FLEET_PARAMS if f in names), next((n for n in names if "clients" in n), None))
    if fleet_param is None:
        raise RecordError(f"{path / 'sweep.json'}: no varied fleet size (expected one of {', '.join(FLEET_PARAMS)} "
                          f"in 'vary'/'params', found {', '.join(names) or 'none'})")
    rows = [_point(path, i, p, fleet_param, notes) for i, p in enumerate(points)]
    rows = [r for r in rows if r is not None]
    metric_key = next((k for k in METRIC_KEYS if any(k in r[2] for r in rows)), METRIC_KEYS[0])
    groups: dict[str, tuple[dict, list[Point]]] = {}
    for settings, fleet, summary, gates in rows:
        label = ", ".join(f"{k}={v}" for k, v in settings.items()) or "as scenario"
        failed = tuple(str(g.get("name")) for g in gates if g.get("verdict") == "fail" and g.get("strict", True))
        metric = number(summary.get(metric_key))
        groups.setdefault(label, (settings, []))[1].append(
            Point(fleet, np.nan if metric is None else metric, not failed, failed))
    result = [Setting(label, s, sorted(pts, key=lambda p: p.fleet)) for label, (s, pts) in groups.items()]
    return Sweep(path, str(data.get("scenario", path.name)), fleet_param, metric_key, result, notes)


def _point(root: Path, index: int, point: Any, fleet_param: str, notes: list[str]):
    where = f"sweep.json: points[{index}]"
    if not isinstance(point, dict) or not isinstance(point.get("params"), dict):
        notes.append(f"{where}: expected an object with 'params', skipped")
        return None
    fleet = number(point["params"].get(fleet_param))
    if fleet is None:
        notes.append(f"{where}: params.{fleet_param} missing or not a number, skipped")
        return None
    summary, gates = point.get("summary"), point.get("gates")
    if (summary is None or gates is None) and point.get("run_dir"):
        run_dir = root / str(point["run_dir"])
        summary = summary if summary is not None else _read(run_dir / "summary.json", dict, notes)
        gates = gates if gates is not None else _read(run_dir / "gates.json", list, notes)
    settings = {k: v for k, v in point["params"].items() if k != fleet_param}
    return settings, fleet, summary if isinstance(summary, dict) else {}, \
        [g for g in gates if isinstance(g, dict)] if isinstance(gates, list) else []


def _read(path: Path, expected: type, notes: list[str]) -> Any:
    return read_json(path, expected, notes) if path.exists() else None

