"""`stormbench validate SCENARIO`: both engines on one scenario at emulation size, and their errors.

The emulation (real server, proxy and clients) and the model run the same scenario, seed and
fleet (`fleet.clients`; the model's `sim_clients` is set to it), and the model is calibrated as
the emulation experiences this machine (CPU times stretched by the time scale, see
`Calibration.compressed`); the table gives, per key metric, both values and the model's relative
error. Exit 0 when every error is within `--tolerance`,
1 otherwise (2 for usage errors, as every subcommand).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from harness.cli import UsageError

HELP = "run both engines on a scenario and print the error table"
METRICS = ("duration_p50_s", "duration_p95_s", "reconnect_attempts", "peak_reconnects_per_s")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", metavar="SCENARIO", help="a scenario file, or the name of a library scenario")
    parser.add_argument("--out", metavar="DIR",
                        help="directory for both run records (default: runs/<scenario>-validate-<timestamp>)")
    parser.add_argument("--tolerance", type=float, default=0.10, metavar="X",
                        help="largest acceptable relative error of the model (default 0.10)")
    parser.add_argument("--calibration", metavar="FILE",
                        help="model calibration file (default: the built-in sim/calibration_default.json)")
    parser.add_argument("--clients", type=int, metavar="N", help="override the fleet size for both engines")
    parser.add_argument("--time-scale", type=float, metavar="X",
                        help="override the emulation's compression: lower is slower but more faithful "
                             "(the emulation warns when a time constant is distorted)")
    parser.add_argument("--emulated", metavar="DIR",
                        help="reuse this finished emulation run record instead of running the emulation again")


def relative_error(model: Any, emulated: Any) -> float | None:
    if model is None or emulated is None:
        return None
    if emulated == 0:
        return 0.0 if model == 0 else float("inf")
    return (float(model) - float(emulated)) / abs(float(emulated))


def error_table(model: dict, emulated: dict, metrics=METRICS) -> list[dict]:
    return [{"metric": m, "emulated": emulated.get(m), "model": model.get(m),
             "error": relative_error(model.get(m), emulated.get(m))} for m in metrics]


def agrees(row: dict, tolerance: float) -> bool:
    """Within tolerance, or both engines unable to estimate it (a quantile neither observed)."""
    if row["model"] is None and row["emulated"] is None:
        return True
    return row["error"] is not None and abs(row["error"]) <= tolerance


def format_table(rows: list[dict], tolerance: float) -> str:
    lines = [f"{'metric':<24}{'emulated':>14}{'model':>14}{'error':>10}  within {tolerance:.0%}"]
    for r in rows:
        err = r["error"]
        ok = agrees(r, tolerance)
        lines.append(f"{r['metric']:<24}{_fmt(r['emulated']):>14}{_fmt(r['model']):>14}"
                     f"{'n/a' if err is None else f'{err:+.1%}':>10}  {'yes' if ok else 'NO'}")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.1f}" if isinstance(value, float) else str(value)


def run(args: argparse.Namespace) -> int:
    from harness.record.finalize import finalize
    from harness.run_cli import resolve_scenario_path
    from harness.scenario import load
    from sim.engine import simulate

    path = resolve_scenario_path(args.scenario)
    overrides = {k: v for k, v in (("clients", args.clients), ("time_scale", args.time_scale)) if v}
    scenario = load(path, overrides)
    scenario = dataclasses.replace(scenario, fleet=dataclasses.replace(scenario.fleet, sim_clients=scenario.fleet.clients))
    out = Path(args.out) if args.out else Path("runs") / f"{scenario.name}-validate-{time.strftime('%Y%m%d-%H%M%S')}"
    if (out / "validate.json").exists():
        raise UsageError(f"--out {out}: already holds a validation; choose another directory")
    if args.emulated:
        emu_dir = Path(args.emulated)
        if not (emu_dir / "summary.json").exists():
            raise UsageError(f"--emulated {emu_dir}: no summary.json (expected a finished emulation run record)")
        emulated = json.loads((emu_dir / "summary.json").read_text())
    else:
        from harness.emulate.engine import emulate

        emu_dir = out / "emulate"
        print(f"emulating {scenario.name} with {scenario.fleet.clients} clients "
              f"({scenario.wall_duration:.0f} s of wall time)...", flush=True)
        emulate(scenario, emu_dir)
        emulated = finalize(emu_dir)
    from sim.calibration import load as load_calibration

    cal, _name = load_calibration(args.calibration)
    cal = cal.compressed(scenario.time_scale)  # the system as the emulation ran it
    print(f"simulating (calibration: {cal.source})...", flush=True)
    model = simulate(scenario, out / "simulate", calibration=cal)
    rows = error_table(model, emulated)
    print(format_table(rows, args.tolerance))
    (out / "validate.json").write_text(json.dumps({"scenario": scenario.name, "tolerance": args.tolerance,
                                                   "emulated": str(emu_dir), "simulated": str(out / "simulate"),
                                                   "rows": rows}, indent=2, default=str) + "\n")
    within = all(agrees(r, args.tolerance) for r in rows)
    return 0 if within else 1
