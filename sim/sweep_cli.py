"""`stormbench sweep SCENARIO --vary PARAM=V1,V2 ...`: simulate over a grid, tabulate gates and metrics.

Every point is a full simulated run record (`point-NNN/`) judged by the scenario's gates; the sweep
directory's `sweep.json` follows README "Sweeps", which `stormbench report` renders as a capacity
curve.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

from cluster import executor
from harness.cli import UsageError

HELP = "simulate a scenario over a parameter grid"
COLUMNS = ("duration_p50_s", "duration_p95_s", "reconnect_attempts", "peak_reconnects_per_s", "storms",
           "http_403", "lost_messages")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", metavar="SCENARIO", help="a scenario file, or the name of a library scenario")
    parser.add_argument("--vary", action="append", default=[], metavar="PARAM=V1,V2,...",
                        help="a scenario field (dotted path or short name, as for overrides) and the values to try; "
                             "repeat for a grid, e.g. --vary fleet.sim_clients=1000,10000 --vary profile=legacy,fixed")
    parser.add_argument("--out", metavar="DIR", help="sweep directory (default: runs/<scenario>-sweep-<timestamp>); "
                             "a directory holding a sweep of the same scenario and grid is resumed: the points "
                             "done are kept, the rest run")
    parser.add_argument("--calibration", metavar="FILE",
                        help="model calibration file (default: the built-in sim/calibration_default.json)")
    parser.add_argument("--gates", metavar="FILE", help="judge with this gate file instead of the scenario's gates")
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


def _point(out: Path, scenario: Any, gates: Any, calibration: str | None) -> dict:
    """One grid point, on a worker: the simulated run record, judged by its gates."""
    from harness.gates.evaluate import evaluate
    from harness.gates.report import write_verdicts
    from harness.record.run import RunRecord
    from sim.engine import simulate

    summary = simulate(scenario, out, calibration=calibration)
    verdicts = evaluate(gates, RunRecord(out))
    write_verdicts(verdicts, out, scenario.name)
    return {"summary": summary, "gates": [v.to_dict() for v in verdicts]}


def sweep(scenario_path: Path, grid: dict[str, list[Any]], out: Path, *, calibration: str | None = None,
          gates_file: str | None = None, echo=print, cluster: str | None = None,
          workers: int | None = None) -> dict:
    """Run every grid point not already in `out/sweep.json` as a `cluster.executor` job; each
    point's row goes to `sweep.csv` and `sweep.json` (in grid order) as it arrives, so a report
    can be drawn while the grid runs and a re-run with the same `out` skips the points done."""
    from cluster.executor import Job, as_finished
    from harness.gates.evaluate import check_metrics
    from harness.gates.spec import load_gates
    from harness.scenario import load

    names = list(grid)
    planned = []
    for combo in itertools.product(*(grid[n] for n in names)):  # every point loads before any runs
        params = dict(zip(names, combo))
        try:
            scenario = load(scenario_path, params)
        except UsageError as exc:
            raise UsageError(f"--vary {', '.join(f'{k}={v}' for k, v in params.items())}: {exc}") from None
        gates = load_gates(gates_file) if gates_file else load_gates(scenario.gates)
        check_metrics(gates, gates_file or scenario.gates_file or str(scenario_path))  # a typo must not cost the grid
        planned.append((combo, params, scenario, gates))
    table = SweepTable(out, str(load(scenario_path).name), grid)
    todo = [i for i in range(len(planned)) if i not in table.done]
    if table.done:
        echo(f"sweep: {len(table.done)} of {len(planned)} points already in {out / SWEEP_JSON}; running {len(todo)}")
    echo("  ".join(f"{n:>18}" for n in names) + "  " + "  ".join(f"{c:>14}" for c in COLUMNS) + "  gates")

    jobs = [Job(f"point {i} ({', '.join(f'{k}={v}' for k, v in planned[i][1].items())}, seed {planned[i][2].seed})",
                _point, (planned[i][2], planned[i][3], calibration), dest=out / _run_dir(i), tag=i)
            for i in todo]
    for done in as_finished(jobs, cluster=cluster, workers=workers, title=f"sweep of {table.scenario}"):
        i = done.job.tag
        if not done.ok:
            table.fail(i, planned[i][1], done.error)
            continue
        table.add(i, {"params": planned[i][1], "run_dir": _run_dir(i), **done.value})
        failed = [v["name"] for v in done.value["gates"] if v["verdict"] == "fail" and v.get("strict", True)]
        echo("  ".join(f"{str(v):>18}" for v in planned[i][0]) + "  " +
             "  ".join(f"{_fmt(done.value['summary'].get(c)):>14}" for c in COLUMNS) +
             "  " + ("pass" if not failed else "FAIL: " + ", ".join(failed)))
    return table.doc()


def _run_dir(i: int) -> str:
    return f"point-{i:03d}"


SWEEP_JSON, SWEEP_CSV = "sweep.json", "sweep.csv"


class SweepTable:
    """`sweep.json` (README "Sweeps"), rewritten whole after every point (write and rename, so a
    reader never sees half a file), and `sweep.csv`, one row appended per point as it arrives.
    Opening a directory that holds a sweep of the same scenario and grid resumes it."""

    def __init__(self, out: Path, scenario: str, grid: dict[str, list[Any]]) -> None:
        self.out, self.scenario, self.grid = out, scenario, grid
        self.points: dict[int, dict] = {}
        self.failed: dict[int, dict] = {}
        old = out / SWEEP_JSON
        if old.exists():
            doc = json.loads(old.read_text())
            if doc.get("scenario") != scenario or doc.get("vary") != json.loads(json.dumps(grid, default=str)):
                raise UsageError(f"--out {out}: holds a sweep of {doc.get('scenario')} over {doc.get('vary')}; "
                                 f"resume it with the same scenario and --vary, or choose another directory")
            self.points = {int(p["run_dir"].rsplit("-", 1)[1]): p for p in doc.get("points", [])
                           if (out / p["run_dir"] / "summary.json").exists()}
        out.mkdir(parents=True, exist_ok=True)
        (out / SWEEP_CSV).unlink(missing_ok=True)  # the table of the points kept, then one row per new one
        for i in sorted(self.points):
            self._append_csv(self.points[i])

    @property
    def done(self) -> set[int]:
        return set(self.points)

    def add(self, i: int, point: dict) -> None:
        self.points[i] = point
        self.failed.pop(i, None)
        self._append_csv(point)
        self._write()

    def fail(self, i: int, params: dict, error: str) -> None:
        self.failed[i] = {"params": params, "run_dir": _run_dir(i), "error": error}
        self._write()

    def doc(self) -> dict:
        doc = {"scenario": self.scenario, "vary": self.grid,
               "points": [self.points[i] for i in sorted(self.points)]}
        if self.failed:
            doc["failed"] = [self.failed[i] for i in sorted(self.failed)]
        return doc

    def _write(self) -> None:
        tmp = self.out / f".{SWEEP_JSON}.tmp"
        tmp.write_text(json.dumps(self.doc(), indent=2, default=str) + "\n")
        tmp.replace(self.out / SWEEP_JSON)

    def _append_csv(self, point: dict) -> None:
        import csv

        path = self.out / SWEEP_CSV
        header = ["run_dir", *self.grid, *COLUMNS, "gates_failed"]
        new = not path.exists()
        with path.open("a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(header)
            failed = [v["name"] for v in point["gates"] if v["verdict"] == "fail" and v.get("strict", True)]
            w.writerow([point["run_dir"], *(point["params"][n] for n in self.grid),
                        *(point["summary"].get(c) for c in COLUMNS), ";".join(failed)])


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def run(args: argparse.Namespace) -> int:
    from harness.run_cli import resolve_scenario_path

    grid = parse_vary(args.vary)
    path = resolve_scenario_path(args.scenario)
    out = Path(args.out) if args.out else Path("runs") / f"{path.stem}-sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        doc = sweep(path, grid, out, calibration=args.calibration, gates_file=args.gates,
                    cluster=executor.address(args.cluster))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(f"sweep: {out / SWEEP_JSON} and {out / SWEEP_CSV}")
    if doc.get("failed"):
        print(f"sweep: {len(doc['failed'])} point(s) failed (listed in sweep.json `failed`); "
              f"run the same command again to retry them", file=sys.stderr)
        return 2
    return 0
