"""Capacity from a sweep: per setting of the other parameters, the largest fleet at which every
client is served and every strict gate holds.

A point holds when no strict gate failed or stayed unknown and no client of the fleet went without
a connection all run (`summary.json` `clients_never_connected`); with replications, a gate holds
only when its interval does. The report names the limiting gate (the first point that does not
hold), the first fleet at which the server turned handshakes away (1013 or refused, even if those
clients came back), and never recommends a setting that fails an advisory gate without saying so.

A sweep directory holds `sweep.json`: `{"scenario", "vary": {param: [values]}, "points":
[{"params": {param: value}, "summary": {...}, "gates": [verdicts], "run_dir": "..."}]}`;
a point may give `run_dir` (relative to the sweep) instead of inline `summary`/`gates`.
The fleet parameter is the varied one naming clients (`fleet.sim_clients` first).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from formats.record import files
from formats.record.run import RecordError, read_json
from reports.record import number

FLEET_PARAMS = ("fleet.sim_clients", "fleet.clients")
PROFILE_PARAMS = ("profile", "fix", "fixes", "no_fix", "fleet.profile", "system.behaviour")
METRIC_KEYS = ("peak_reconnects_per_s", "reconnect_attempts")


@dataclass(frozen=True)
class Point:
    fleet: float
    metric: float
    passed: bool              # every strict gate passed (unknown is not a pass) and every client was served
    failed_gates: tuple[str, ...]              # strict gates that failed
    unknown_gates: tuple[str, ...] = ()        # strict gates the point could not decide
    advisory_failed: tuple[str, ...] = ()      # advisory gates that failed
    never_connected: int | None = None         # fleet clients that never had a connection open
    turned_away: int | None = None             # handshakes shed (1013) or refused at the handshake
    weight: int = 1                            # clients each simulated agent stood for
    incomplete: str | None = None              # why the point's run did not finish (its sweep was interrupted)
    pass_probability: float | None = None      # share of its replications in which every strict gate passed
    replications: int = 1

    @property
    def limits(self) -> list[str]:
        """Why the point does not hold (empty when it does)."""
        why = [*self.failed_gates, *(f"{g} (unknown)" for g in self.unknown_gates)]
        if self.never_connected:
            why.append(f"{self.never_connected:,} clients never connected")
        if self.incomplete:
            why.append(f"incomplete: {self.incomplete}")
        return why


@dataclass(frozen=True)
class Setting:
    label: str                # e.g. "client.max_delay=30, client.jitter=full"
    params: dict[str, Any]
    points: list[Point]       # ascending fleet size

    @property
    def capacity(self) -> float | None:
        """Largest fleet tried before the first point that does not hold (a strict gate failed or is
        unknown, or a client of the fleet never connected); None if the smallest already does not."""
        best = None
        for point in self.points:
            if not point.passed:
                break
            best = point.fleet
        return best

    @property
    def limited_by(self) -> Point | None:
        """The first point that does not hold: its `limits` name the limiting gate."""
        return next((p for p in self.points if not p.passed), None)

    @property
    def first_turned_away(self) -> Point | None:
        """The smallest fleet at which the server turned a handshake away (1013 or refused)."""
        return next((p for p in self.points if p.turned_away), None)

    @property
    def advisory_failures(self) -> tuple[str, ...]:
        """Advisory gates failed at any fleet up to the capacity: the setting holds, but not cleanly."""
        cap = self.capacity
        if cap is None:
            return ()
        return tuple(dict.fromkeys(g for p in self.points if p.fleet <= cap for g in p.advisory_failed))


@dataclass(frozen=True)
class Sweep:
    path: Path
    scenario: str
    fleet_param: str
    metric_key: str
    settings: list[Setting]
    notes: list[str]
    incomplete: str | None = None   # sweep.json says the sweep stopped before its grid was done

    def recommended(self) -> Setting | None:
        """The setting that holds the largest fleet with every gate, advisory ones included (first
        listed on a tie); when none holds cleanly, the best by strict gates, whose
        `advisory_failures` the report must then state."""
        ranked = [s for s in self.settings if s.capacity is not None]
        clean = [s for s in ranked if not s.advisory_failures]
        pool = clean or ranked
        return max(pool, key=lambda s: s.capacity) if pool else None


def load_sweep(path: Path) -> Sweep:
    data = read_json(path / "sweep.json")
    if data is None:
        raise RecordError(f"{path / 'sweep.json'}: missing (expected a sweep directory)")
    notes: list[str] = []
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
    for settings, fleet, summary, gates, extra in rows:
        label = ", ".join(f"{k}={v}" for k, v in settings.items()) or "as scenario"
        groups.setdefault(label, (settings, []))[1].append(_judge(fleet, summary, gates, extra, metric_key))
    result = [Setting(label, s, sorted(pts, key=lambda p: p.fleet)) for label, (s, pts) in groups.items()]
    incomplete = data.get("incomplete")
    return Sweep(path, str(data.get("scenario", path.name)), fleet_param, metric_key, result, notes,
                 str(incomplete) if incomplete else None)


def _names(gates: list[dict], verdict: str, strict: bool) -> tuple[str, ...]:
    return tuple(str(g.get("name")) for g in gates
                 if g.get("verdict") == verdict and bool(g.get("strict", True)) == strict)


def _judge(fleet: float, summary: dict, gates: list[dict], extra: dict, metric_key: str) -> Point:
    """One point: with replications (`extra["replications"]`), a gate holds only when the interval
    of its observed value lies on the passing side (`interval_verdict` per gate), not one draw."""
    block = extra.get("replications") if isinstance(extra.get("replications"), dict) else None
    if block and isinstance(block.get("gates"), list):
        gates = [{**g, "verdict": g.get("interval_verdict", g.get("verdict"))} for g in block["gates"]
                 if isinstance(g, dict)]
    failed, unknown = _names(gates, "fail", True), _names(gates, "unknown", True)
    metric = number(summary.get(metric_key))
    never = number(summary.get("clients_never_connected"))
    if block:  # served in every replication, not only in the main draw
        values = ((block.get("metrics") or {}).get("clients_never_connected") or {}).get("values") or []
        never = max([never or 0.0, *(number(v) or 0.0 for v in values)])
    turned = number(summary.get("turned_away"))
    incomplete = extra.get("incomplete")
    point = Point(fleet, np.nan if metric is None else metric, False, failed, unknown,
                  _names(gates, "fail", False), None if never is None else int(never),
                  None if turned is None else int(turned), int(number(summary.get("sampling_weight")) or 1),
                  str(incomplete) if incomplete else None,
                  number(block.get("pass_probability")) if block else None,
                  int(block.get("n") or 1) if block else 1)
    return replace(point, passed=not point.limits)


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
        run_dir, found = root / str(point["run_dir"]), []
        summary = summary if summary is not None else read_json(run_dir / files.SUMMARY, dict, found)
        gates = gates if gates is not None else read_json(run_dir / files.GATES, list, found)
        notes.extend(f"{where}: {note}" for note in found)
    settings = {k: v for k, v in point["params"].items() if k != fleet_param and k not in PROFILE_PARAMS}
    if isinstance(point.get("profile"), str) and any(k in PROFILE_PARAMS for k in point["params"]):
        settings = {"profile": point["profile"], **settings}  # named by its fixes: legacy+refresh_before_reconnect
    extra = {k: point[k] for k in ("replications", "incomplete") if point.get(k)}
    return settings, fleet, summary if isinstance(summary, dict) else {}, \
        [g for g in gates if isinstance(g, dict)] if isinstance(gates, list) else [], extra


CAPACITY_HEADERS = ("setting", "capacity (every client served, every strict gate holds)", "limited by",
                    "first turned away", "advisory gates failed")


def _count(value: float) -> str:
    return f"{value:,.0f}"


def capacity_table(sweep: Sweep) -> tuple[list[list[str]], list[str]]:
    """The capacity rows (`CAPACITY_HEADERS`) and the lines under them: the recommendation, said
    with its caveats, the sampling weight of the simulated points and what the sweep left out."""
    rows = []
    for s in sweep.settings:
        limit, shed = s.limited_by, s.first_turned_away
        rows.append([
            s.label,
            _count(s.capacity) if s.capacity is not None else "below the smallest fleet tried",
            f"{_count(limit.fleet)}: {'; '.join(limit.limits)}" if limit else "not reached in the grid",
            f"{_count(shed.fleet)}: {shed.turned_away:,} handshakes turned away" if shed else "none",
            ", ".join(s.advisory_failures) or "none",
        ])
    lines = []
    best = sweep.recommended()
    if best is None:
        lines.append("no setting holds at any fleet size tried: no recommendation")
    elif best.advisory_failures:
        lines.append(f"no setting holds every gate; by strict gates only: {best.label} (holds "
                     f"{_count(best.capacity)} clients) but it FAILS the advisory gate(s) "
                     f"{', '.join(best.advisory_failures)}")
    else:
        lines.append(f"recommended: {best.label} (holds {_count(best.capacity)} clients, every gate)")
    for s in sweep.settings:
        if s.advisory_failures and s is not best:
            lines.append(f"not recommended: {s.label} fails the advisory gate(s) {', '.join(s.advisory_failures)}")
    weighted = sorted({(p.fleet, p.weight) for s in sweep.settings for p in s.points if p.weight > 1})
    if weighted:
        lines.append("simulated with sampling (counts are for the whole fleet): " +
                     ", ".join(f"{_count(f)} clients: each agent stood for {w}" for f, w in weighted))
    replicated = [p for s in sweep.settings for p in s.points if p.replications > 1]
    if replicated:
        lines.append(f"each point is {replicated[0].replications} replications; a gate holds when its 95% interval "
                     "does; pass probability per point: " +
                     "; ".join(f"{s.label or 'as scenario'} @ {_count(p.fleet)}: {p.pass_probability:.0%}"
                               for s in sweep.settings for p in s.points if p.pass_probability is not None))
    incomplete = [f"{s.label} @ {_count(p.fleet)}" for s in sweep.settings for p in s.points if p.incomplete]
    if sweep.incomplete:
        lines.append(f"INCOMPLETE sweep: {sweep.incomplete}")
    if incomplete:
        lines.append(f"incomplete points (not finished, never counted as holding): {', '.join(incomplete)}")
    return rows, lines
