"""`stormbench sweep SCENARIO --vary PARAM=V1,V2 ...`: simulate over a grid, tabulate gates and metrics.

Every point is a full simulated run record (`point-NNN/`) judged by the scenario's gates; the sweep
directory's `sweep.json` follows README "Sweeps", which `stormbench report` renders as a capacity
curve. The sweep ends with the capacity table (`reports.sweep`): the largest fleet at which every
client is served and every strict gate holds, the gate that limits it and the first fleet at which
the server turned clients away.

Three steps, so the executor can change without touching the rest: `plan` loads and checks every
point before anything runs, `run_points` yields each finished run (a point under one seed; every
run a Dask job), and `collect` records whatever iterable of finished runs it is given, also when a
Ctrl-C stops it. Results stream into `sweep.csv` and `sweep.json` as they arrive and a re-run with
the same `--out` runs only what is missing (`commands.sweep_table`).
"""
from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from cluster import executor
from commands import sweep_table
from formats.scenario.fixes import FIX_KEYS, add_fix_flags, flag_overrides, profile_label
from system.errors import UsageError
from system.units import positive_int_arg, positive_int_or_all_arg

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
    parser.add_argument("--out", metavar="DIR", help="sweep directory (default: runs/<scenario>-sweep-<timestamp>); "
                             "one holding the same sweep is resumed: the point x seed runs already in its "
                             "sweep.csv are skipped")
    parser.add_argument("--calibration", metavar="FILE",
                        help="model calibration file (default: the built-in formats/calibration_default.json)")
    parser.add_argument("--gates", metavar="FILE", help="judge with this gate file instead of the scenario's gates")
    parser.add_argument("--agents", type=positive_int_or_all_arg, metavar="N|all",
                        help="follow at most N clients of each point one by one (each agent then stands for several "
                             "clients); all: one agent per client (default: as `run`)")
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


@dataclass(frozen=True)
class Run:
    """One point under one seed: a job of the sweep and a row of its table. Replication `k` runs
    seed `seed + k`; 0 is the point's own record (`point-NNN/`), the others go below it
    (`point-NNN/replications/seed-N`, as `sim.replicate` lays them out)."""

    point: Planned
    k: int
    scenario: Any                # the point's scenario with this run's seed
    run_dir: Path

    def name(self, out: Path) -> str:
        return self.run_dir.relative_to(out).as_posix()


def runs_of(planned: list[Planned], replications: int) -> list[Run]:
    from sim.replicate import seed_jobs

    return [Run(p, k, job.scenario, Path(job.out)) for p in planned
            for k, job in enumerate(seed_jobs(p.scenario, p.run_dir, replications))]


def run_points(runs: list[Run], *, calibration: tuple[Any, str] | None = None, cluster: str | None = None,
               workers: int | None = None, agents: int | None = None) -> Iterator[Run]:
    """Each run as it finishes, its record (judged) unpacked into its folder: every run a Dask job
    (`cluster.executor`), all at once, so replications spread over the workers like points do. A
    failed run is named by the progress display and left out (a re-run retries it). `calibration`:
    (the calibration read, the file it came from), None for the shipped one."""
    from cluster.executor import Job, as_finished

    jobs = [Job(f"point {r.point.index} ({', '.join(f'{k}={v}' for k, v in r.point.params.items())}, "
                f"seed {r.scenario.seed})", _run_job, (r.scenario, r.point.gates, calibration, agents), dest=r.run_dir,
                tag=r) for r in runs]
    title = f"sweep of {runs[0].scenario.name}" if runs else "sweep"
    for done in as_finished(jobs, cluster=cluster, workers=workers, title=title):
        if done.ok:
            yield done.job.tag


def _run_job(out: Path, scenario: Any, gates: list, calibration: tuple[Any, str] | None,
             agents: int | None) -> None:
    """One run on a worker: simulated and judged into `out`, which the client unpacks into its folder."""
    from sim.engine import simulate

    cal, name = calibration or (None, None)
    simulate(scenario, out, calibration=cal, calibration_name=name, max_agents=agents)
    _judge(gates, out, scenario.name)


def _judge(gates: list, run_dir: Path, name: str) -> list[dict]:
    from formats.gates.evaluate import evaluate
    from formats.gates.report import write_verdicts
    from formats.record.run import RunRecord

    judged = evaluate(gates, RunRecord(run_dir))
    write_verdicts(judged, run_dir, name)
    return [v.to_dict() for v in judged]


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


class Results:
    """The finished runs of a sweep, per point; a point is done when all its seeds are. Every run
    is read back from its record on disk (`summary.json`, `gates.json`), whether it finished just
    now or in an earlier, interrupted run of the same sweep: one path, so a resumed table is the
    table an uninterrupted sweep writes."""

    def __init__(self, out: Path, planned: list[Planned], runs: list[Run], table: Any, echo: Callable[[str], None]):
        self.out, self.planned, self.table, self.echo = out, planned, table, echo
        self.seeds: dict[int, list[Run]] = {p.index: [] for p in planned}
        for r in runs:
            self.seeds[r.point.index].append(r)
        self.finished: dict[int, dict[int, tuple[dict, list]]] = {p.index: {} for p in planned}
        self.entries: dict[int, dict] = {}

    def arrived(self, run: Run, *, new: bool = True) -> None:
        from formats.record import files
        from formats.record.run import RunRecord

        record = RunRecord(run.run_dir)
        summary, gates = record.summary, record.document(files.GATES, list)
        self.finished[run.point.index][run.k] = (summary, gates)
        entry = None
        if len(self.finished[run.point.index]) == len(self.seeds[run.point.index]):
            self.entries[run.point.index] = entry = self._entry(run.point)
        # the table's row last: a Ctrl-C before it leaves the run to the next, resumed sweep; after it,
        # sweep.json (written from `entries`) holds every run the table does
        if new:
            self.table.append({"run_dir": run.name(self.out), "point": run.point.run_dir.name,
                               "seed": run.scenario.seed, **run.point.params, "label": run.point.label,
                               **{c: summary.get(c) for c in COLUMNS}, "failed_gates": ";".join(failures(gates))})
        if entry is not None:
            self.echo(_row(entry, list(run.point.params)))

    def _entry(self, point: Planned) -> dict:
        """The point's entry of `sweep.json`; with replications its main summary gets the
        `replications` block and each gate its interval verdict (`replication_verdicts`)."""
        from sim.replicate import SeedJob, write_replications

        done = self.finished[point.index]
        entry = {"params": point.params, "profile": point.label, "run_dir": point.run_dir.name,
                 "summary": done[0][0], "gates": done[0][1]}
        if len(done) > 1:
            jobs = [SeedJob(r.scenario, str(r.run_dir), None, {}) for r in self.seeds[point.index]]
            summary = write_replications(jobs, {k: s for k, (s, _) in done.items()}, point.run_dir, None)
            entry.update(summary=summary, gates=_judge(point.gates, point.run_dir, point.scenario.name))
            entry["replications"] = replication_verdicts(summary["replications"], [done[k][1] for k in sorted(done)])
        return entry

    def points(self) -> list[dict]:
        """The finished points in grid order, then each point with only some seeds finished
        (marked incomplete: it never counts as holding)."""
        points = [self.entries[i] for i in sorted(self.entries)]
        for p in self.planned:
            got = len(self.finished[p.index])
            if got and p.index not in self.entries:
                points.append({"params": p.params, "profile": p.label, "run_dir": p.run_dir.name,
                               "incomplete": f"{got} of {len(self.seeds[p.index])} seeds finished"})
        return points

    def write(self, incomplete: str | None = None) -> dict:
        return self.table.write(self.points(), incomplete=incomplete,
                                planned=len(self.planned) if incomplete else None)


def collect(results: Results, finished: Iterable[Run]) -> dict:
    """`sweep.json` rewritten as each run of `finished` arrives (marked incomplete until the grid is
    done, so a report drawn mid-way or after a kill says so). A Ctrl-C while waiting writes what
    finished, marked incomplete, and re-raises saying so."""
    total = len(results.planned)
    started = time.monotonic()

    def progress() -> str:
        return f"{len(results.entries)} of {total} points finished"

    results.write(f"running or stopped: {progress()}")
    try:
        for run in finished:
            results.arrived(run)
            results.write(f"running or stopped: {progress()}")
    except KeyboardInterrupt as exc:
        why = f"interrupted (Ctrl-C) after {time.monotonic() - started:.0f} s: {progress()}"
        results.write(why)
        if not str(exc) and hasattr(finished, "close"):  # it came while a finished run was being kept:
            finished.close()  # the executor cancels the rest now, not when the generator is collected
        cancelled = f" ({str(exc) or 'the runs not finished are cancelled'})"
        raise KeyboardInterrupt(f"{why}{cancelled}; {results.out / sweep_table.JSON} holds them (marked incomplete), "
                                f"{results.out / sweep_table.CSV} every finished run; the same command resumes "
                                f"the sweep") from None
    unfinished = total - len(results.entries)
    return results.write(f"{unfinished} of {total} points did not finish (a run failed, named above); the same "
                         f"command retries them" if unfinished else None)


def failures(gates: list[dict]) -> list[str]:
    """The strict gates that failed."""
    return [v["name"] for v in gates if v["verdict"] == "fail" and v.get("strict", True)]


def _row(entry: dict, names: list[str]) -> str:
    summary = entry["summary"]
    failed = failures(entry["gates"])
    weight = summary.get("sampling_weight") or 1
    return ("  ".join(f"{str(entry['params'][n]):>18}" for n in names) + "  " +
            "  ".join(f"{_fmt(summary.get(c)):>14}" for c in COLUMNS) + "  " +
            ("pass" if not failed else "FAIL: " + ", ".join(failed)) +
            (f"  (each simulated client stood for {weight})" if weight > 1 else ""))


def sweep(scenario_path: Path, grid: dict[str, list[Any]], out: Path, *, calibration: str | None = None,
          gates_file: str | None = None, echo=print, base: dict[str, Any] | None = None,
          replications: int = 1, cluster: str | None = None, workers: int | None = None,
          agents: int | None = None) -> dict:
    """Run every point x seed of the grid not already in `out`'s table (README "Sweeps")."""
    from formats.scenario import load

    from sim.calibration import load as load_calibration

    # read here, not on a worker: a missing or bad file is the user's error before anything runs, and
    # a worker on another host gets the calibration itself, not a path it may not have
    calibration_read = None if calibration is None else load_calibration(calibration)
    planned = plan(scenario_path, grid, out, gates_file=gates_file, base=base)
    runs = runs_of(planned, replications)
    header = {"scenario": str(load(scenario_path).name), "vary": grid, "replications": replications,
              **({"base": {k: v for k, v in base.items() if v}} if base and any(base.values()) else {}),
              "gates_file": gates_file, "calibration": calibration,
              **({} if agents is None else {"agents": "all" if agents == sys.maxsize else agents}),
              "fingerprint": sweep_table.fingerprint(planned)}
    names = list(grid)
    table = sweep_table.Table(out, header, ["run_dir", "point", "seed", *names, "label", *COLUMNS, "failed_gates"])
    try:
        results = Results(out, planned, runs, table, echo)
        todo = [r for r in runs if r.name(out) not in table.done]
        if len(todo) < len(runs):
            echo(f"sweep: resuming {out}: {len(runs) - len(todo)} of {len(runs)} runs (point x seed) already "
                 f"done, skipped; {len(todo)} to run")
        echo("  ".join(f"{n:>18}" for n in names) + "  " + "  ".join(f"{c:>14}" for c in COLUMNS) + "  gates")
        for run in runs:
            if run.name(out) in table.done:
                results.arrived(run, new=False)
        return collect(results, run_points(todo, calibration=calibration_read, cluster=cluster, workers=workers,
                                             agents=agents))
    finally:
        table.close()


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
    base = {"profile": args.profile, **flag_overrides(args)}
    try:
        doc = sweep(path, grid, out, calibration=args.calibration, gates_file=args.gates, base=base,
                    replications=args.replications, cluster=executor.address(args.cluster), agents=args.agents)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print_capacity(out)
    print(f"sweep: {out / sweep_table.JSON} and {out / sweep_table.CSV}")
    if doc.get("incomplete"):
        print(f"sweep: {doc['incomplete']}", file=sys.stderr)
        return 1
    return 0
