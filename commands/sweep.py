"""`stormbench sweep SCENARIO --vary PARAM=V1,V2 ...`: simulate over a grid, tabulate gates and metrics.

Every point is a full simulated run record (`point-NNN/`) judged by the scenario's gates; the sweep
directory's `sweep.json` follows README "Sweeps", which `stormbench report` renders as a capacity
curve.
"""
from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path
from typing import Any

from system.errors import UsageError

HELP = "simulate a scenario over a parameter grid"
COLUMNS = ("duration_p50_s", "duration_p95_s", "reconnect_attempts", "peak_reconnects_per_s", "storms",
           "http_403", "lost_messages")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", metavar="SCENARIO", help="a scenario file, or the name of a library scenario")
    parser.add_argument("--vary", action="append", default=[], metavar="PARAM=V1,V2,...",
                        help="a scenario field (dotted path or short name, as for overrides) and the values to try; "
                             "repeat for a grid, e.g. --vary fleet.sim_clients=1000,10000 --vary profile=legacy,fixed")
    parser.add_argument("--out", metavar="DIR", help="sweep directory (default: runs/<scenario>-sweep-<timestamp>)")
    parser.add_argument("--calibration", metavar="FILE",
                        help="model calibration file (default: the built-in sim/calibration_default.json)")
    parser.add_argument("--gates", metavar="FILE", help="judge with this gate file instead of the scenario's gates")


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


def sweep(scenario_path: Path, grid: dict[str, list[Any]], out: Path, *, calibration: str | None = None,
          gates_file: str | None = None, echo=print) -> dict:
    from harness.gates.evaluate import check_metrics, evaluate
    from harness.gates.report import write_verdicts
    from harness.gates.spec import load_gates
    from harness.record.run import RunRecord
    from harness.scenario import load
    from sim.engine import simulate

    names = list(grid)
    planned = []
    override = None
    if gates_file:  # parsed and checked once for the grid: a typo must not cost it
        override = load_gates(gates_file)
        check_metrics(override, gates_file)
    for combo in itertools.product(*(grid[n] for n in names)):  # every point loads before any runs
        params = dict(zip(names, combo))
        try:
            scenario = load(scenario_path, params)
        except UsageError as exc:
            raise UsageError(f"--vary {', '.join(f'{k}={v}' for k, v in params.items())}: {exc}") from None
        gates = override if override is not None else list(scenario.checked_gates)  # parsed by the loader
        planned.append((combo, params, scenario, gates))
    out.mkdir(parents=True, exist_ok=True)
    points = []
    echo("  ".join(f"{n:>18}" for n in names) + "  " + "  ".join(f"{c:>14}" for c in COLUMNS) + "  gates")
    for i, (combo, params, scenario, gates) in enumerate(planned):
        run_dir = out / f"point-{i:03d}"
        summary = simulate(scenario, run_dir, calibration=calibration)
        verdicts = evaluate(gates, RunRecord(run_dir))
        write_verdicts(verdicts, run_dir, scenario.name)
        verdict_dicts = [v.to_dict() for v in verdicts]
        failed = [v["name"] for v in verdict_dicts if v["verdict"] == "fail" and v.get("strict", True)]
        points.append({"params": params, "run_dir": run_dir.name, "summary": summary, "gates": verdict_dicts})
        echo("  ".join(f"{str(v):>18}" for v in combo) + "  " +
             "  ".join(f"{_fmt(summary.get(c)):>14}" for c in COLUMNS) +
             "  " + ("pass" if not failed else "FAIL: " + ", ".join(failed)))
    doc = {"scenario": str(load(scenario_path).name), "vary": grid, "points": points}
    (out / "sweep.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return doc


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def run(args: argparse.Namespace) -> int:
    from commands.run import resolve_scenario_path

    grid = parse_vary(args.vary)
    path = resolve_scenario_path(args.scenario)
    out = Path(args.out) if args.out else Path("runs") / f"{path.stem}-sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    if (out / "sweep.json").exists():
        raise UsageError(f"--out {out}: already holds a sweep; choose another directory")
    try:
        sweep(path, grid, out, calibration=args.calibration, gates_file=args.gates)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(f"sweep: {out / 'sweep.json'}")
    return 0
