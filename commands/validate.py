"""`stormbench validate SCENARIO`: both engines on one scenario at emulation size, and their errors.

The emulation (real server, proxy and clients) and the model run the same scenario, seed and
fleet (`fleet.clients`; the model's `sim_clients` is set to it), and the model is calibrated as
the emulation experiences this machine (CPU times stretched by the time scale, see
`Calibration.compressed`), with the emulation's own load generator on the server's cores
(`Calibration.testbed`, `sim.testbed`: its client workers and proxy spend CPU on every refresh
and connect of a herd, so a mass expiry's herd is served at the pace of the shared CPUs); the
table gives, per key metric, both values and the model's relative error, and a verdict per row
saying which rule applied:
- `within`: within `--tolerance` of the model (of its mean over `--replications` seeds); with
  `--emulations K` (or `--emulated` repeated) the emulated value is the mean of K runs: one emulated
  run's 1-s peak varies by 10-20% from run to run on a shared machine (token-expiry-403: 61-111
  over nine runs of five seeds), more than the tolerance, so only means can be held to it;
- `interval`: else, the emulated value lies inside the model's 95% interval for one run (for the
  mean of K runs) (a peak of a few hundred clients is a maximum of small counts);
- `unknown`: neither engine could estimate it (a quantile neither observed);
- `unresolved`: a peak that disagrees where the emulation could not place its records within half
  a bin: its workers' event loops ran late around the peak by more than that (in scenario time:
  the lag times the time scale), so the row says which `--time-scale` would resolve it; or a
  duration on which the engines differ by less than the emulation's resolution over the run;
- `NO`: a disagreement. Exit 1 when any row says NO, else 0 (2 for usage errors, as every subcommand).
Each peak row names its bin (the highest mean rate over that many seconds). When the 1-s or 5-s
peak is unresolved, a row `peak_reconnects_per_s_<W>s` compares the peak at the finest bin W the
emulation resolves (`resolved_peak_row`; at x720 a bin of several hundred seconds).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cluster import executor
from commands.cli import add_json_flag, set_document
from system.errors import UsageError
from formats.record import files
from formats.record.run import RunRecord
from formats.scenario.fixes import add_fix_flags, flag_overrides
from system.units import positive_int_arg

if TYPE_CHECKING:
    from formats.scenario import Scenario
    from sim.calibration import Calibration

HELP = "run both engines on a scenario and print the error table"
METRICS = ("duration_p50_s", "duration_p95_s", "reconnect_attempts", "peak_reconnects_per_s",
           "peak_reconnects_per_s_5s")
#: peak metrics and the width (scenario seconds) of the bins they are the maximum of
PEAK_BINS = {"peak_reconnects_per_s": 1, "peak_reconnects_per_s_5s": 5}
#: durations, compared to the emulation's time resolution over the whole run
DURATIONS = ("duration_p50_s", "duration_p95_s")

#: verdicts of a row: the first two and `unknown` agree, `unresolved` can not be judged, `NO` disagrees
WITHIN, INTERVAL, UNKNOWN, UNRESOLVED, DISAGREE = "within", "interval", "unknown", "unresolved", "NO"
AGREEING = (WITHIN, INTERVAL, UNKNOWN)


def configure(parser: argparse.ArgumentParser) -> None:
    from commands.run import add_clock_flag

    parser.add_argument("scenario", metavar="SCENARIO", help="a scenario file, or the name of a library scenario")
    parser.add_argument("--out", metavar="DIR",
                        help="directory for both run records (default: runs/<scenario>-validate-<timestamp>)")
    add_json_flag(parser)
    parser.add_argument("--tolerance", type=float, default=0.10, metavar="X",
                        help="largest acceptable relative error of the model (default 0.10)")
    parser.add_argument("--calibration", metavar="FILE",
                        help="model calibration file (default: the built-in formats/calibration_default.json)")
    parser.add_argument("--clients", type=int, metavar="N", help="override the fleet size for both engines")
    parser.add_argument("--profile", choices=("legacy", "fixed"),
                        help="name the whole system for both engines (default: the scenario's)")
    add_fix_flags(parser)
    parser.add_argument("--time-scale", type=float, metavar="X",
                        help="override the emulation's compression: lower is slower but more faithful "
                             "(the emulation warns when a time constant is distorted; the table says when "
                             "a per-second peak needs a lower one)")
    add_clock_flag(parser)
    parser.add_argument("--emulated", metavar="DIR", action="append",
                        help="reuse this finished emulation run record instead of running the emulation again; "
                             "repeat it for several (their means are compared, as with --emulations)")
    parser.add_argument("--emulations", type=positive_int_arg, default=1, metavar="K",
                        help="emulate seeds seed..seed+K-1 one after another (K times the wall time; default 1); "
                             "with K >= 2 each row compares the engines' means: one emulated run's peaks vary by "
                             "10-20%% from run to run on a shared machine, so one run can not be held to 10%%")
    parser.add_argument("--replications", type=positive_int_arg, default=1, metavar="N",
                        help="model seeds seed..seed+N-1 in parallel processes (default 1); with N >= 2 the table "
                             "shows the model's mean and the 95%% interval one run falls in, and a row also "
                             "agrees when the emulated value lies inside that interval")
    executor.add_argument(parser)


def relative_error(model: Any, emulated: Any) -> float | None:
    if model is None or emulated is None:
        return None
    if emulated == 0:
        return 0.0 if model == 0 else float("inf")
    return (float(model) - float(emulated)) / abs(float(emulated))


def error_table(model: dict, emulated: dict, metrics=METRICS, *, spread: dict | None = None,
                resolution: dict | None = None, emulated_values: dict | None = None) -> list[dict]:
    """One row per metric. `spread` (from `sim.replicate`): per metric the model's `mean`, `pi`
    (where one run falls, 95%, or the mean of as many runs as the emulation made) and `values`
    over the seeds; the model's value is then the mean. `resolution`: per peak metric
    `{resolution_s, bin_s, suggested_time_scale}`, how far the emulation may have displaced the
    records of its peak. `emulated_values`: per metric each emulated run's value, when `emulated`
    holds their means."""
    rows = []
    for m in metrics:
        s = (spread or {}).get(m) or {}
        value = s.get("mean", model.get(m)) if s.get("n") else model.get(m)
        rows.append({"metric": m, "emulated": emulated.get(m), "model": value,
                     "model_pi": s.get("pi"), "model_values": s.get("values"),
                     **({"emulated_values": emulated_values[m]} if emulated_values else {}),
                     "error": relative_error(value, emulated.get(m)),
                     **((resolution or {}).get(m) or {})})
    return rows


def mean_of(values: list[Any]) -> float | None:
    """The mean of the known values (a quantile a run could not estimate is left out); None if none."""
    known = [float(v) for v in values if v is not None]
    return sum(known) / len(known) if known else None


def median_resolution(found: list[dict | None]) -> dict | None:
    """The typical time resolution of several emulated runs: the run with the median one (a single
    stalled run does not make the rest unresolvable, nor does a quiet one resolve the rest)."""
    known = sorted((f for f in found if f is not None), key=lambda f: f["resolution_s"])
    return known[(len(known) - 1) // 2] if known else None


def judge(row: dict, tolerance: float) -> tuple[str, str]:
    """The row's verdict and why: within `tolerance` of the model (its mean over seeds), else the
    emulated value inside the model's interval for one run, else unresolved when the emulation
    could not place its records to within `tolerance` of a bin around the peak (displacing a herd
    by a share x of a bin moves up to x of a bin's count to its neighbour: a herd about a second
    wide read in 1-s bins changes by up to that share), else a disagreement."""
    if row["model"] is None and row["emulated"] is None:
        return UNKNOWN, "neither engine could estimate it"
    err, pi, emulated = row["error"], row.get("model_pi"), row["emulated"]
    values = row.get("model_values") or []
    if emulated is None and None in values:
        known = sum(v is not None for v in values)
        return UNKNOWN, f"the emulation could not estimate it, nor could the model with {len(values) - known} of {len(values)} seeds"
    if row["model"] is None or emulated is None:
        return DISAGREE, f"only the {'model' if emulated is None else 'emulation'} could estimate it"
    mean = "the model's mean" if row.get("model_values") else "the model"
    runs = len(row.get("emulated_values") or ()) or 1
    of = f"the mean of {runs} emulated runs" if runs > 1 else "one run"
    if err is not None and abs(err) <= tolerance:
        return WITHIN, f"within {tolerance:.0%} of {mean}" + (f" ({of})" if runs > 1 else "")
    if pi is not None and emulated is not None and pi[0] <= emulated <= pi[1]:
        return INTERVAL, f"inside the model's 95% interval for {of} [{pi[0]:.1f}, {pi[1]:.1f}]"
    res, width = row.get("resolution_s"), row.get("bin_s")
    if (res is not None and width is None and row["model"] is not None and emulated is not None
            and abs(row["model"] - emulated) <= res):
        return UNRESOLVED, (f"the engines differ by {abs(row['model'] - emulated):.3g} s, within the emulation's "
                            f"time resolution ({res:.3g} s of scenario time at time_scale {row['time_scale']:g})")
    if res is not None and width is not None and res > tolerance * width:
        return UNRESOLVED, (f"not comparable at time_scale {row['time_scale']:g}: around its peak the emulation's "
                            f"loop ran {res / row['time_scale'] * 1000:.0f} ms late = {res:.2f} s of scenario time "
                            f"> {tolerance:.0%} of the {width:g}-s bin; resolved at --time-scale "
                            f"{time_scale_for(row, tolerance):.2g} or lower if the loop ran as late")
    return DISAGREE, f"outside {tolerance:.0%}" + (" and the model's interval" if pi is not None else "")


def agrees(row: dict, tolerance: float) -> bool:
    """Within tolerance, inside the model's interval, or both engines unable to estimate it."""
    return judge(row, tolerance)[0] in AGREEING


def format_table(rows: list[dict], tolerance: float) -> str:
    runs = max([len(r.get("emulated_values") or ()) for r in rows] + [1])
    lines = [f"{'metric':<30}{'bin':>7}{'emulated':>10}{'model':>10}"
             f"{'model 95% (1 run)' if runs == 1 else f'model 95% (mean of {runs})':>22}{'error':>9}  verdict"]
    for r in rows:
        err, pi = r["error"], r.get("model_pi")
        verdict, why = judge(r, tolerance)
        span = "" if pi is None else f"[{pi[0]:.1f}, {pi[1]:.1f}]"
        width = r.get("bin_s") or PEAK_BINS.get(r["metric"])  # the bin a peak is the highest mean rate over
        lines.append(f"{r['metric']:<30}{'' if width is None else f'{width:g} s':>7}{_fmt(r['emulated']):>10}"
                     f"{_fmt(r['model']):>10}{span:>22}{'n/a' if err is None else f'{err:+.1%}':>9}  {verdict}: {why}")
    for r in rows:
        if r.get("resolution_s") is not None and r.get("bin_s") is not None:
            lines.append(f"emulation resolution at the {r['metric']} peak (t={r['peak_t']:g} s): "
                         f"{r['resolution_s']:.2f} s of scenario time (longest loop lag x time_scale)")
    counts = {v: sum(judge(r, tolerance)[0] == v for r in rows) for v in (WITHIN, INTERVAL, UNKNOWN, UNRESOLVED, DISAGREE)}
    lines.append(f"exit {1 if counts[DISAGREE] else 0}: {counts[WITHIN]} within {tolerance:.0%}, "
                 f"{counts[INTERVAL]} inside the model's interval, {counts[UNKNOWN]} unknown to both, "
                 f"{counts[UNRESOLVED]} not comparable at this time scale, {counts[DISAGREE]} disagree")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.1f}" if isinstance(value, float) else str(value)


def record(run_dir: Path) -> RunRecord:
    """A run record as `validate` reads what it needs beside the summary (the self-check, the
    reconnects per second, the measured fault windows): through the one reader, leniently, so a
    record without one of them gives no resolution or no shift rather than an error."""
    return RunRecord(run_dir, lenient=True)


def self_check(run_dir: Path) -> dict:
    return record(run_dir).meta.get("self_check") or {}


def duration_resolution(emu_dir: Path, time_scale: float) -> dict | None:
    """The emulation's time resolution over the whole run: a duration it measured is only known to
    about that (a connection shed with 1013 lasts one close round trip, a few ms of wall time)."""
    from formats.record.resolution import time_resolution

    res = time_resolution(self_check(emu_dir), time_scale)
    return None if res is None else {"resolution_s": res, "bin_s": None, "time_scale": time_scale}


def time_scale_for(row: dict, tolerance: float) -> float:
    """The time scale at which the same wall-clock lag displaces records by `tolerance` of a bin."""
    return row["time_scale"] * min(1.0, tolerance * row["bin_s"] / row["resolution_s"])


def peak_resolution(emu_dir: Path, metric: str, time_scale: float) -> dict | None:
    """Where the emulated run's `metric` peak lies and how far the emulation may have displaced
    the records there (`formats.record.resolution.time_resolution` over the peak's bins and one
    bin either side); None without the tables to tell."""
    return _peak_window(emu_dir, PEAK_BINS[metric], time_scale)


def _reconnects(run_dir: Path):
    ts = record(run_dir).timeseries
    return None if ts is None or "reconnects" not in ts.columns else ts[["t", "reconnects"]]


def _peak_window(emu_dir: Path, width: int, time_scale: float) -> dict | None:
    from formats.record.resolution import time_resolution

    reconnects = _reconnects(emu_dir)
    if reconnects is None or reconnects.empty:
        return None
    sums = reconnects["reconnects"].rolling(width, min_periods=1).sum()
    start = max(0.0, float(reconnects["t"].iloc[int(sums.to_numpy().argmax())]) - (width - 1))
    res = time_resolution(self_check(emu_dir), time_scale, (start - width, start + 2 * width))
    if res is None:
        return None
    return {"resolution_s": res, "bin_s": width, "peak_t": start, "time_scale": time_scale}


def peak_over(run_dir: Path, width: int) -> float | None:
    """The highest mean of reconnects per second over `width` consecutive seconds of a run
    (`peak_reconnects_per_s` at width 1, `peak_reconnects_per_s_5s` at 5)."""
    from formats.record.finalize import rolling_peak  # as finalize computes the 5-s peak

    reconnects = _reconnects(run_dir)
    return None if reconnects is None else rolling_peak(reconnects["reconnects"], width)


#: bin widths (scenario seconds) tried, finest first, for the peak the emulation resolves
RESOLVED_BINS = (10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


def resolved_peak_row(emu_dirs: list[Path], model_dirs: list[Path], time_scale: float, tolerance: float) -> dict | None:
    """A peak both engines can be compared on when the 1-s and 5-s ones are not: the finest bin
    width in `RESOLVED_BINS` at which the emulation placed the records around its peak to within
    `tolerance` of the bin (the same rule as `judge`), named for that width
    (`peak_reconnects_per_s_<W>s`, the highest mean rate over W consecutive seconds). The model's
    value is its mean over `model_dirs` (one run per seed), with the 95% interval for the mean of
    as many runs as `emu_dirs` (whose mean is the emulated value; their median resolution decides).
    None when no width up to an hour is resolved or the tables are missing."""
    from sim.replicate import prediction_interval

    for width in RESOLVED_BINS:
        where = median_resolution([_peak_window(d, width, time_scale) for d in emu_dirs])
        if where is None:
            return None
        if where["resolution_s"] > tolerance * width:
            continue
        values = [peak_over(d, width) for d in model_dirs]
        emulated = [peak_over(d, width) for d in emu_dirs]
        model = mean_of(values)
        return {"metric": f"peak_reconnects_per_s_{width}s", "emulated": mean_of(emulated), "model": model,
                "model_pi": prediction_interval(values, runs=len(emu_dirs)),
                "model_values": values if len(values) > 1 else None,
                **({"emulated_values": emulated} if len(emulated) > 1 else {}),
                "error": relative_error(model, mean_of(emulated)), **where}
    return None


#: faults whose scheduled time the model keeps: a restart's stop begins when its call does (its
#: duration is `restart_s`), and a load spike's clients arrive on the plan's schedule
UNSHIFTED = ("server_restart", "load_spike")


@dataclasses.dataclass(frozen=True)
class EmulatedSystem:
    """The system the emulation really ran, in scenario seconds: what the model must simulate to be
    compared with it. At high time scales the emulation floors the server's heartbeat and expiry
    grace (`harness.emulate.engine.server_options`, the same function it starts the server with),
    and its restarts take as long as this machine needs to stop and start a server under the load.
    Every other fault is in force from when the emulation's call applying it returned (the
    `fault_start`/`fault_stop` records' `t + applied_in_s`), not its scheduled second: a herd about
    a second wide has a 1-s peak anywhere from half to all of it depending on where it starts
    against the second grid, so the model of the emulated run must start it where that did."""
    scenario: "Scenario"
    expiry_grace_s: float
    restart_s: float | None  # the emulated restarts' mean duration (fault_start applied_in_s), None: none ran
    notes: tuple[str, ...]


def emulated_system(scenario: "Scenario", emu_dir: Path, time_scale: float | None = None) -> EmulatedSystem:
    from harness.emulate.engine import server_options
    from harness.emulate.timescale import TimeScale

    scale = TimeScale(scenario.time_scale if time_scale is None else time_scale)
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
    applied: dict[tuple[str, int], float] = {}  # (fault_start|fault_stop, index) -> when the call returned
    for w in record(emu_dir).summary.get("fault_windows") or ():  # the harness's fault_start/fault_stop
        i = int(w["index"])
        if w.get("start_s") is not None:
            applied[("fault_start", i)] = float(w["start_s"]) + float(w.get("applied_s") or 0.0)
            if w.get("kind") == "server_restart":
                restarts.append(float(w.get("applied_s") or 0.0))
        if w.get("stop_s") is not None:
            applied[("fault_stop", i)] = float(w["stop_s"]) + float(w.get("lifted_s") or 0.0)
    restart_s = sum(restarts) / len(restarts) if restarts else None
    if restart_s is not None:
        notes.append(f"restart (stop and start) {restart_s:g}s as the emulated ones took")
    faults, shifted = [], []
    for i, f in enumerate(sc.faults):
        start = applied.get(("fault_start", i))
        if start is None or f.kind in UNSHIFTED:
            faults.append(f)
            continue
        stop = applied.get(("fault_stop", i))
        lasting = f.for_ if f.for_ is None or stop is None else max(0.0, stop - start)
        faults.append(dataclasses.replace(f, at=start, for_=lasting))
        shifted.append(f"{f.kind} {f.at:g}s→{start:.2f}s" + ("" if stop is None else f" until {stop:.2f}s"))
    if shifted:
        sc = dataclasses.replace(sc, faults=tuple(faults) if isinstance(sc.faults, tuple) else faults)
        notes.append("faults in force when the emulation's calls returned: " + ", ".join(shifted))
    return EmulatedSystem(sc, grace, restart_s, tuple(notes))


def free_cores(cal: "Calibration", emu_dirs: list[Path]) -> tuple["Calibration", float | None]:
    """`cal` with its testbed on the cores the emulation had: the calibrated ones less what the
    rest of the machine took meanwhile (`self_check.other_cpu_cores`, the median run's), rounded,
    at least one; and that load (None: not recorded, the calibrated cores stand)."""
    busy = [float(other) for other in (self_check(d).get("other_cpu_cores") for d in emu_dirs) if other is not None]
    if not busy:
        return cal, None
    load = sorted(busy)[(len(busy) - 1) // 2]
    cores = max(1, round(cal.testbed.cores - load))
    return dataclasses.replace(cal, testbed=dataclasses.replace(cal.testbed, cores=cores)), load


def _emulate(out: Path, scenario: "Scenario") -> dict:
    """One emulation, on a worker: the raw record, finalized there. It runs in a child process
    that takes Ctrl-C as `run` does (a worker of the local cluster ignores it, and is stopped when
    the command is): on a terminal's Ctrl-C the emulation still keeps its partial record and stops
    its server, proxy and client workers."""
    import multiprocessing

    from formats.record.finalize import finalize

    child = multiprocessing.get_context("spawn").Process(target=_emulate_child, args=(out, scenario),
                                                          name="stormbench-emulation")
    child.start()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"the emulation stopped (exit code {child.exitcode}); its partial record and "
                           f"warnings are in meta.json")
    return finalize(out)


def _emulate_child(out: Path, scenario: "Scenario") -> None:
    import signal

    from harness.emulate.engine import emulate

    signal.signal(signal.SIGINT, signal.default_int_handler)  # the worker ignores it; this run takes it
    try:
        emulate(scenario, out)
    except KeyboardInterrupt:  # the record says it was interrupted; the command says the rest
        raise SystemExit(130) from None


def emulations(scenario: "Scenario", out: Path, k: int, cluster: str | None) -> tuple[list[Path], list[dict]]:
    """Emulate seeds seed..seed+k-1 as `cluster.executor` jobs, one after another: two emulations
    at once would share (and measure) one machine's CPUs. Every run must finish: the table
    compares their mean."""
    from cluster.executor import Job, run_jobs

    dirs = [out / "emulate" if k == 1 else out / "emulate" / f"seed-{scenario.seed + i}" for i in range(k)]
    print(f"emulating {scenario.name} with {scenario.fleet.clients} clients, seeds {scenario.seed}..{scenario.seed + k - 1} "
          + ("(virtual clock)..." if scenario.virtual else f"({scenario.wall_duration:.0f} s of wall time each)..."),
          flush=True)
    done = run_jobs([Job(f"emulation seed {scenario.seed + i}", _emulate,
                         (dataclasses.replace(scenario, seed=scenario.seed + i),), dest=d) for i, d in enumerate(dirs)],
                    cluster=cluster, limit=1, title=f"emulations of {scenario.name}", children=True)
    failed = [f"{d.job.label}: {d.error}" for d in done if not d.ok]
    if failed:
        raise UsageError("emulation failed: " + "; ".join(failed))
    return dirs, [d.value for d in done]


def run(args: argparse.Namespace) -> int:
    from formats.record.finalize import finalize
    from commands.run import resolve_scenario_path
    from formats.scenario import load
    from sim.engine import simulate

    path = resolve_scenario_path(args.scenario)
    overrides = {k: v for k, v in (("clients", args.clients), ("time_scale", args.time_scale),
                                   ("clock", args.clock), ("profile", args.profile),
                                   *flag_overrides(args).items()) if v}
    scenario = load(path, overrides)
    scenario = dataclasses.replace(scenario, fleet=dataclasses.replace(scenario.fleet, sim_clients=scenario.fleet.clients))
    out = Path(args.out) if args.out else Path("runs") / f"{scenario.name}-validate-{time.strftime('%Y%m%d-%H%M%S')}"
    if (out / "validate.json").exists():
        raise UsageError(f"--out {out}: already holds a validation; choose another directory")
    emu_dirs = [Path(d) for d in args.emulated] if args.emulated else []
    for emu_dir in emu_dirs:
        if not emu_dir.is_dir():
            raise UsageError(f"--emulated {emu_dir}: {'is a file' if emu_dir.exists() else 'does not exist'}, "
                             f"expected the directory of a finished emulation run record")
        if not (emu_dir / files.SUMMARY).exists():
            raise UsageError(f"--emulated {emu_dir}: no {files.SUMMARY} (expected a finished emulation run record)")
    if emu_dirs and args.emulations > 1:
        raise UsageError("--emulations: not with --emulated (repeat --emulated DIR to compare several finished runs)")
    summaries = []
    for emu_dir in emu_dirs:
        found = RunRecord(emu_dir).summary
        if any(m not in found for m in METRICS):  # finalized before a metric existed: derive it again
            found = finalize(emu_dir)
        summaries.append(found)
    if not emu_dirs:
        emu_dirs, summaries = emulations(scenario, out, args.emulations, executor.address(args.cluster))
    emu_dir = emu_dirs[0]  # the faults' applied times and the floors the model takes: the first run's
    emulated_values = {m: [sm.get(m) for sm in summaries] for m in METRICS} if len(summaries) > 1 else None
    emulated = summaries[0] if emulated_values is None else {m: mean_of(v) for m, v in emulated_values.items()}
    replications = max(args.replications, len(emu_dirs))
    from sim.calibration import load as load_calibration

    cal, _name = load_calibration(args.calibration)
    virtual = scenario.virtual
    # the system as the emulation ran it: on the virtual clock CPU is free and nothing is floored
    cal = (cal.on_virtual_clock(scenario.system.restart_downtime) if virtual
           else cal.compressed(scenario.time_scale))
    system = emulated_system(scenario, emu_dir, 1.0 if virtual else scenario.time_scale)
    if system.restart_s is not None:
        cal = dataclasses.replace(cal, restart_downtime_s=system.restart_s)
    notes = list(system.notes)
    if cal.testbed is not None:
        cal, busy = free_cores(cal, emu_dirs)
        if busy is not None:
            notes.append(f"the rest of the machine took {busy:.2f} cores during the emulation (self_check "
                         f"other_cpu_cores{', median run' if len(emu_dirs) > 1 else ''}): the testbed has "
                         f"{cal.testbed.cores} core(s) left")
        tb = cal.testbed
        notes.append(f"the emulation's client workers and proxy share {tb.cores} CPUs with the server, "
                     f"{tb.token_cost.mean / scenario.time_scale * 1000:.2f} ms of CPU per token request and "
                     f"{tb.connect_cost.mean / scenario.time_scale * 1000:.2f} ms per connect "
                     f"(x{scenario.time_scale:g}: {tb.token_cost.mean:.3g} s and {tb.connect_cost.mean:.3g} s)")
    for note in notes:
        print(f"model: {note}", flush=True)
    print(f"simulating (calibration: {cal.source}"
          + (f"; {replications} seeds from {scenario.seed}" if replications > 1 else "") + ")...", flush=True)
    if replications > 1:
        from sim.replicate import prediction_interval, replicate

        model = replicate(system.scenario, out / "simulate", replications, calibration=cal,
                          cluster=executor.address(args.cluster), expiry_grace=system.expiry_grace_s,
                          testbed=cal.testbed)
        spread = model["replications"]["metrics"]
        if len(emu_dirs) > 1:  # where the mean of as many runs as the emulation made falls
            spread = {m: {**v, "pi": prediction_interval(v["values"], runs=len(emu_dirs))} for m, v in spread.items()}
    else:
        model = simulate(system.scenario, out / "simulate", calibration=cal, expiry_grace=system.expiry_grace_s,
                         testbed=cal.testbed)
        spread = None
    resolution = {m: median_resolution([peak_resolution(d, m, scenario.time_scale) for d in emu_dirs])
                  for m in PEAK_BINS}
    resolution.update({m: median_resolution([duration_resolution(d, scenario.time_scale) for d in emu_dirs])
                       for m in DURATIONS})
    bottleneck = []
    for d in emu_dirs:
        check = self_check(d)
        if check.get("load_generator_bottleneck"):
            bottleneck += [f"{d}: {reason}" if len(emu_dirs) > 1 else reason for reason in check.get("bottleneck_reasons") or ()]
    bottleneck = bottleneck or None
    rows = error_table(model, emulated, spread=spread, resolution=resolution, emulated_values=emulated_values)
    for r in rows:
        r["verdict"], r["why"] = judge(r, args.tolerance)
    if any(r["verdict"] == UNRESOLVED and r.get("bin_s") for r in rows):
        runs = model.get("replications", {}).get("runs") or ["."]
        extra = resolved_peak_row(emu_dirs, [out / "simulate" / r for r in runs], scenario.time_scale, args.tolerance)
        if extra is not None:
            extra["verdict"], extra["why"] = judge(extra, args.tolerance)
            rows.append(extra)
    if emulated_values:
        print(f"emulated: the mean of {len(emu_dirs)} runs ({', '.join(str(d) for d in emu_dirs)})")
    print(format_table(rows, args.tolerance))
    if bottleneck:
        print(f"warning: the emulation's load generator was the bottleneck ({'; '.join(bottleneck)}): its figures "
              f"measure this machine's load as much as the system; rerun on a quieter machine or a lower --time-scale")
    result = {"scenario": scenario.name, "tolerance": args.tolerance, "time_scale": scenario.time_scale,
              "replications": replications,
              "emulated": [str(d) for d in emu_dirs] if len(emu_dirs) > 1 else str(emu_dir),
              "simulated": str(out / "simulate"), "model_of_emulation": notes,
              "load_generator_bottleneck": bottleneck, "rows": rows}
    (out / "validate.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    code = 1 if any(r["verdict"] == DISAGREE for r in rows) else 0
    set_document(args, {**result, "outcome": "agree" if code == 0 else "disagree",
                        "paths": {"validate_json": str(out / "validate.json")}})
    return code
