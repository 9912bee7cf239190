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
from typing import TYPE_CHECKING, Any

from harness.cli import UsageError

if TYPE_CHECKING:
    from harness.scenario import Scenario

HELP = "run both engines on a scenario and print the error table"
METRICS = ("duration_p50_s", "duration_p95_s", "reconnect_attempts", "peak_reconnects_per_s",
           "peak_reconnects_per_s_5s")


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
    lines = [f"{'metric':<26}{'emulated':>14}{'model':>14}{'error':>10}  within {tolerance:.0%}"]
    for r in rows:
        err = r["error"]
        ok = agrees(r, tolerance)
        lines.append(f"{r['metric']:<26}{_fmt(r['emulated']):>14}{_fmt(r['model']):>14}"
                     f"{'n/a' if err is None else f'{err:+.1%}':>10}  {'yes' if ok else 'NO'}")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.1f}" if isinstance(value, float) else str(value)


@dataclasses.dataclass(frozen=True)
class EmulatedSystem:
    """The system the emulation really ran, in scenario seconds: what the model must simulate to be
    compared with it. At high time scales the emulation floors the server's heartbeat and expiry
    grace (`harness.emulate.engine.server_options`, the same function it starts the server with),
    and its restarts take as long as this machine needs to stop and start a server under the load."""
    scenario: "Scenario"
    expiry_grace_s: float
    restart_s: float | None  # the emulated restarts' mean duration (fault_start applied_in_s), None: none ran
    notes: tuple[str, ...]


def emulated_system(scenario: "Scenario", emu_dir: Path) -> EmulatedSystem:
    from harness.emulate.engine import server_options
    from harness.emulate.timescale import TimeScale

    scale = TimeScale(scenario.time_scale)
    opts, _warnings = server_options(scenario, scale, emu_dir / "unused.db")
    hb = scenario.system.heartbeat
    interval = None if opts.heartbeat_interval is None else scale.to_scenario(opts.heartbeat_interval)
    timeout = None if opts.heartbeat_timeout is None else scale.to_scenario(opts.heartbeat_timeout)
    notes = []
    if (interval, timeout) != (hb.interval, hb.timeout):
        notes.append(f"heartbeat {hb.interval:g}s/{hb.timeout:g}s as the emulation floored it: {interval:g}s/{timeout:g}s")
    sc = dataclasses.replace(scenario, system=dataclasses.replace(
        scenario.system, heartbeat=dataclasses.replace(hb, interval=interval, timeout=timeout)))
    grace = scale.to_scenario(opts.expiry_grace) if opts.expiry_grace is not None else 10.0
    if abs(grace - 10.0) > 1e-9:
        notes.append(f"live-expiry grace 10s as the emulation floored it: {grace:g}s")
    restarts = []
    events = emu_dir / "events.jsonl"
    if events.exists():
        with events.open() as fh:
            for line in fh:
                if '"fault_start"' in line and '"server_restart"' in line:
                    restarts.append(float(json.loads(line)["applied_in_s"]))
    restart_s = sum(restarts) / len(restarts) if restarts else None
    if restart_s is not None:
        notes.append(f"restart (stop and start) {restart_s:g}s as the emulated ones took")
    return EmulatedSystem(sc, grace, restart_s, tuple(notes))


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
        if any(m not in emulated for m in METRICS):  # finalized before a metric existed: derive it again
            emulated = finalize(emu_dir)
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
    system = emulated_system(scenario, emu_dir)
    if system.restart_s is not None:
        cal = dataclasses.replace(cal, restart_downtime_s=system.restart_s)
    for note in system.notes:
        print(f"model: {note}", flush=True)
    print(f"simulating (calibration: {cal.source})...", flush=True)
    model = simulate(system.scenario, out / "simulate", calibration=cal, expiry_grace=system.expiry_grace_s)
    rows = error_table(model, emulated)
    print(format_table(rows, args.tolerance))
    (out / "validate.json").write_text(json.dumps({"scenario": scenario.name, "tolerance": args.tolerance,
                                                   "emulated": str(emu_dir), "simulated": str(out / "simulate"),
                                                   "model_of_emulation": list(system.notes),
                                                   "rows": rows}, indent=2, default=str) + "\n")
    within = all(agrees(r, args.tolerance) for r in rows)
    return 0 if within else 1
