"""`stormbench sweep SCENARIO --vary PARAM=V1,V2 ...`: simulate over a grid, tabulate gates and metrics.

Every point is a full simulated run record (`point-NNN/`) judged by the scenario's gates; the sweep
directory's `sweep.json` follows README "Sweeps", which `stormbench report` renders as a capacity
curve. The sweep ends with the capacity table (`reports.sweep`): the largest fleet at which every
client is served and every strict gate holds, the gate that limits it and the first fleet at which
the server turned clients away.

Three steps, so the executor can change without touching the rest: `plan` loads and checks every
point before anything runs, `run_points` yields finished points (here one after another, each with
its replications in parallel processes), and `collect` writes `sweep.json` from whatever iterable of
finished points it is given, also when a Ctrl-C stops it (the finished points, marked incomplete).
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from cluster import executor
from formats.scenario.fixes import FIX_KEYS, add_fix_flags, flag_overrides, profile_label
from system.errors import UsageError
from system.units import positive_int_arg

HELP = "simulate a scenario over a parameter grid"
COLUMNS = ("duration_p50_s", "duration_p95_s", "reconnect_attempts", "peak_reconnects_per_s", "storms",
           "http_403", "lost_messages", "clients_never_connected", "turned_away")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", metavar="SCENARIO", help="a scenario file, or the name of a library scenario")
    parser.add_argument("--vary", action="append", default=[], metavar="PARAM=V1,V2,...",
                        help="a scenario field (dotted path or short name, as for overrides) and the values to try; "
                             "repeat for a grid, e.g. --vary fleet.sim_clients=1000,10000 --vary profile=legacy,fixed; "
                             "fix=a,b,c tries one fix at a time on the profile (none: the profile alone), "
                             "fixes=a+b,c several at once")
    parser.add_argument("--out", metavar="DIR", help="sweep directory (default: runs/<scenario>-sweep-<timestamp>)")
    parser.add_argument("--calibration", metavar="FILE",
                        help="model calibration file (default: the built-in formats/calibration_default.json)")
    parser.add_argument("--gates", metavar="FILE", help="judge with this gate file instead of the scenario's gates")
    parser.add_argument("--profile", choices=("legacy", "fixed"),
                        help="the base system of every point (default: the scenario's)")
    add_fix_flags(parser)
    parser.add_argument("--replications", type=positive_int_arg, default=1, metavar="N",
                        help="run every point under seeds SEED..SEED+N-1: each metric gets its 95%% interval, each "
                             "point a pass probability, and a gate holds only when its interval does (default 1)")
    executor.add_argument(parser)


def parse_vary(items: list[str]) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not name.strip() or not values.strip():
            raise UsageError(f"--vary {item!r}: expected PARAM=V1,V2,... (e.g. fleet.sim_clients=1000,10000)")
        grid[name.strip()] = [_value(v.strip()) for v in values.split(",") if v.strip()]
    if not grid:
        raise UsageError("--vary: give at least one parameter to sweep (e.g. --vary fleet.sim_clients=1000,10000)")
    return grid


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


@dataclass(frozen=True)
class Planned:
    index: int
    params: dict[str, Any]
    scenario: Any                # formats.scenario.Scenario
    gates: list
    run_dir: Path

    @property
    def label(self) -> str:
        return profile_label(self.scenario.to_dict())


def plan(scenario_path: Path, grid: dict[str, list[Any]], out: Path, *, gates_file: str | None = None,
         base: dict[str, Any] | None = None) -> list[Planned]:
    """Every point loaded, its gates parsed and their metrics checked, before the first simulation."""
    from formats.gates.evaluate import check_metrics
    from formats.gates.spec import load_gates
    from formats.scenario import load

    names = list(grid)
    planned = []
    override = None
    if gates_file:  # parsed and checked once for the grid: a typo must not cost it
        override = load_gates(gates_file)
        check_metrics(override, gates_file)
    for i, combo in enumerate(itertools.product(*(grid[n] for n in names))):  # every point loads before any runs
        params = dict(zip(names, combo))
        overrides = {**(base or {}), **params}
        for key in FIX_KEYS:  # a varied fix adds to the fixes given with --fix
            if key in params and (base or {}).get(key):
                overrides[key] = [*base[key], *([] if params[key] in (None, "none") else [params[key]])]
        try:
            scenario = load(scenario_path, overrides)
        except UsageError as exc:
            raise UsageError(f"--vary {', '.join(f'{k}={v}' for k, v in params.items())}: {exc}") from None
        gates = override if override is not None else list(scenario.checked_gates)  # parsed by the loader
        planned.append(Planned(i, params, scenario, gates, out / f"point-{i:03d}"))
    return planned


def run_points(planned: list[Planned], *, calibration: str | None = None, replications: int = 1,
               cluster: str | None = None, workers: int | None = None) -> Iterator[dict]:
    """Each point's entry of `sweep.json` as it finishes: each point a Dask job (`cluster.executor`;
    a failed one is named by the progress display and left out), or with replications the points
    in turn, each point's seeds the jobs."""
    from cluster.executor import Job, as_finished

    if replications > 1:
        for point in planned:
            yield run_point(point, calibration=calibration, replications=replications, cluster=cluster)
        return
    jobs = [Job(f"point {p.index} ({', '.join(f'{k}={v}' for k, v in p.params.items())}, seed {p.scenario.seed})",
                _point_job, (p, calibration), dest=p.run_dir, tag=p) for p in planned]
    for done in as_finished(jobs, cluster=cluster, workers=workers, title=f"sweep of {planned[0].scenario.name}"
                            if planned else "sweep"):
        if done.ok:
            yield {**done.value, "run_dir": done.job.tag.run_dir.name}


def _point_job(out: Path, point: Planned, calibration: str | None) -> dict:
    """One point on a worker: its record in `out`, which the client unpacks into the point's folder."""
    return run_point(dataclasses.replace(point, run_dir=out), calibration=calibration)


def run_point(point: Planned, *, calibration: str | None = None, replications: int = 1,
              cluster: str | None = None) -> dict:
    """One point: simulated (with its replications), judged, its verdicts written next to it."""
    from formats.gates.evaluate import evaluate
    from formats.gates.report import write_verdicts
    from formats.record.run import RunRecord
    from sim.engine import simulate
    from sim.replicate import replicate

    try:
        if replications > 1:
            summary = replicate(point.scenario, point.run_dir, replications, calibration=calibration,
                                cluster=cluster)
        else:
            summary = simulate(point.scenario, point.run_dir, calibration=calibration)
    except KeyboardInterrupt as exc:
        raise PointInterrupted(point, str(exc)) from None
    judged = evaluate(point.gates, RunRecord(point.run_dir))
    write_verdicts(judged, point.run_dir, point.scenario.name)
    verdicts = [v.to_dict() for v in judged]
    entry = {"params": point.params, "profile": point.label, "run_dir": point.run_dir.name,
             "summary": summary, "gates": verdicts}
    block = summary.get("replications")
    if block:
        runs = [point.run_dir / r for r in block["runs"]]
        per_run = [[v.to_dict() for v in evaluate(point.gates, RunRecord(r))] for r in runs]
        entry["replications"] = replication_verdicts(block, per_run)
    return entry


class PointInterrupted(KeyboardInterrupt):
    """A Ctrl-C while a point ran: which point, and what its replications kept."""

    def __init__(self, point: Planned, detail: str) -> None:
        super().__init__(detail)
        self.point = point


def replication_verdicts(block: dict, per_run: list[list[dict]]) -> dict:
    """Per gate over the replications: the observed values, their 95% interval and the verdict of
    the interval (pass when the whole interval passes, fail when none of it does, unknown when it
    straddles the threshold or a run could not decide); and the share of runs in which every strict
    gate passed."""
    from formats.gates.evaluate import compare
    from sim.replicate import interval

    gates = []
    for i, first in enumerate(per_run[0]):
        runs = [r[i] for r in per_run]
        values = [r["observed"] for r in runs]
        spread = interval(values)
        ends = spread["ci"] or ([spread["mean"]] * 2 if spread["mean"] is not None and len(runs) == 1 else None)
        if any(r["verdict"] == "unknown" for r in runs) or ends is None:
            verdict = "unknown"
        else:
            sides = {compare(first["op"], float(x), _threshold(first["threshold"])) for x in ends}
            verdict = "unknown" if len(sides) > 1 else ("pass" if sides == {True} else "fail")
        gates.append({"name": first["name"], "strict": first.get("strict", True), "op": first["op"],
                      "threshold": first["threshold"], "values": values, "mean": spread["mean"],
                      "ci": spread["ci"], "interval_verdict": verdict,
                      "verdicts": [r["verdict"] for r in runs]})
    passed = [all(v["verdict"] == "pass" for v in run if v.get("strict", True)) for run in per_run]
    return {"n": len(per_run), "seeds": block["seeds"], "pass_probability": sum(passed) / len(passed),
            "metrics": block["metrics"], "gates": gates, **({"incomplete": block["incomplete"]}
                                                           if block.get("incomplete") else {})}


def _threshold(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def collect(planned: list[Planned], finished: Iterable[dict], out: Path, doc: dict,
            echo: Callable[[str], None] = print) -> dict:
    """`sweep.json` from the finished points, in grid order. A Ctrl-C while waiting writes what
    finished, names the point that was running (its record marked incomplete) and re-raises."""
    from formats.record import files
    from formats.record.writer import merge_meta

    points: list[dict] = []
    started = time.monotonic()
    echo("  ".join(f"{n:>18}" for n in doc["vary"]) + "  " + "  ".join(f"{c:>14}" for c in COLUMNS) + "  gates")
    try:
        for entry in finished:
            points.append(entry)
            points.sort(key=lambda p: p["run_dir"])  # grid order, whatever order they finish in
            _write(out, {**doc, "points": points})  # a report can be drawn while the grid runs
            echo(_row(entry, list(doc["vary"])))
    except KeyboardInterrupt as exc:
        why = f"interrupted (Ctrl-C) after {time.monotonic() - started:.0f} s: {len(points)} of {len(planned)} " \
              f"points finished"
        running = getattr(exc, "point", None)
        if running is not None:
            if running.run_dir.is_dir():
                merge_meta(running.run_dir, {files.META_INCOMPLETE: why})
            points.append({"params": running.params, "profile": running.label, "run_dir": running.run_dir.name,
                           "incomplete": f"{why}{'; ' + str(exc) if str(exc) else ''}"})
        _write(out, {**doc, "points": points, "incomplete": why, "planned": len(planned)})
        raise KeyboardInterrupt(f"{why}; {out / 'sweep.json'} holds them (marked incomplete)") from None
    return _write(out, {**doc, "points": points})


def _write(out: Path, doc: dict) -> dict:
    from formats.record.writer import write_atomic

    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "sweep.json", json.dumps(doc, indent=2, default=str) + "\n")
    return doc


def _row(entry: dict, names: list[str]) -> str:
    summary = entry["summary"]
    failed = [v["name"] for v in entry["gates"] if v["verdict"] == "fail" and v.get("strict", True)]
    weight = summary.get("sampling_weight") or 1
    return ("  ".join(f"{str(entry['params'][n]):>18}" for n in names) + "  " +
            "  ".join(f"{_fmt(summary.get(c)):>14}" for c in COLUMNS) + "  " +
            ("pass" if not failed else "FAIL: " + ", ".join(failed)) +
            (f"  (each simulated client stood for {weight})" if weight > 1 else ""))


def sweep(scenario_path: Path, grid: dict[str, list[Any]], out: Path, *, calibration: str | None = None,
          gates_file: str | None = None, echo=print, base: dict[str, Any] | None = None,
          replications: int = 1, cluster: str | None = None, workers: int | None = None) -> dict:
    from formats.scenario import load

    planned = plan(scenario_path, grid, out, gates_file=gates_file, base=base)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"scenario": str(load(scenario_path).name), "vary": grid, "replications": replications,
           **({"base": {k: v for k, v in base.items() if v}} if base and any(base.values()) else {})}
    return collect(planned, run_points(planned, calibration=calibration, replications=replications, cluster=cluster,
                                       workers=workers), out, doc, echo)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.1f}" if math.isfinite(value) else str(value)
    return str(value)


def print_capacity(out: Path, echo: Callable[[str], None] = print) -> None:
    """The capacity table of a sweep directory, as the report renders it (a grid without a fleet
    size has none)."""
    from formats.record.run import RecordError
    from reports.sweep import CAPACITY_HEADERS, capacity_table, load_sweep

    try:
        rows, lines = capacity_table(load_sweep(out))
    except RecordError:
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(CAPACITY_HEADERS)]
    echo("")
    echo("  ".join(h.ljust(w) for h, w in zip(CAPACITY_HEADERS, widths)))
    for row in rows:
        echo("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    for line in lines:
        echo(line)


def run(args: argparse.Namespace) -> int:
    from commands.run import resolve_scenario_path

    grid = parse_vary(args.vary)
    path = resolve_scenario_path(args.scenario)
    out = Path(args.out) if args.out else Path("runs") / f"{path.stem}-sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    if (out / "sweep.json").exists():
        raise UsageError(f"--out {out}: already holds a sweep; choose another directory")
    base = {"profile": args.profile, **flag_overrides(args)}
    try:
        sweep(path, grid, out, calibration=args.calibration, gates_file=args.gates, base=base,
              replications=args.replications, cluster=executor.address(args.cluster))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print_capacity(out)
    print(f"sweep: {out / 'sweep.json'}")
    return 0
