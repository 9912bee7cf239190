"""`stormbench main-job` (what `make run` runs): the seed system's before/after, measured.

One scenario (default `staging-day`) is emulated twice — `--profile legacy` (the
legacy client against the legacy server) and `--profile fixed` — each run finalized
and judged by its gates exactly as `stormbench run` does it. Then the seed's
before/after table is printed with the measured values next to the seed's
expectations, the gate verdicts side by side, and the report is rendered. Its exit code
is the fixed run's gate verdict (0 pass, 1 fail, 3 unknown), as a load tool's thresholds
decide its exit code (k6): a CI step running the job fails when the fix does not hold.
`--exit-zero` makes it 0 whenever both runs completed (a demo, or a job that only
collects the report). `--prometheus` watches each run with a real Prometheus, as
`stormbench run --prometheus` does, and shows its verdicts beside the run records'.

On the virtual clock (staging-day's default) the two profiles run at once in two processes:
each is one event loop on its own scenario time, so neither's verdicts depend on the other
(or on anything else the machine runs). On the wall clock they run one after the other, as
two measurements of the machine must.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from commands.cli import EXIT_OK, UsageError, add_json_flag, set_document
from formats.gates.evaluate import evaluate
from formats.gates.report import outcome_line, output_console, write_verdicts
from formats.gates.verdict import verdicts_document
from formats.gates.wording import quantity
from formats.record.finalize import finalize
from formats.record.run import RunRecord
from formats.record.writer import merge_meta
from commands.run import (
    add_clock_flag, check_out_dir, engine_guard, prepare_out_dir, refuse_flags_on_virtual_clock,
    require_prometheus_binary, resolve_scenario_path, scrape_interval,
)
from formats.scenario import Scenario, load
from formats.scenario.fixes import add_fix_flags, flag_overrides

HELP = "the `make run` job: staging-day legacy vs fixed, before/after table"
PROFILES = ("legacy", "fixed")
MAX_WARNINGS = 4


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", default="staging-day",
                        help="scenario file or library name to run with both profiles (default: staging-day)")
    parser.add_argument("--out", metavar="DIR",
                        help="where the two run records and the report go (default: runs/main-job-<timestamp>)")
    parser.add_argument("--seed", type=int, metavar="N", help="override the scenario's seed (default: its `seed`)")
    parser.add_argument("--clients", type=int, metavar="N",
                        help="override the emulated fleet size (default: the scenario's fleet.clients)")
    parser.add_argument("--time-scale", type=float, metavar="X",
                        help="override the time compression, in scenario seconds per wall second "
                             "(default: the scenario's time_scale)")
    add_fix_flags(parser)  # on top of both profiles: what one fix changes in the before/after table
    add_clock_flag(parser)
    parser.add_argument("--no-report", action="store_true", help="skip rendering the HTML report")
    parser.add_argument("--prometheus", action="store_true",
                        help="watch each run with a real Prometheus (`prometheus` on PATH) scraping the server, "
                             "judge the gates through it too and show those verdicts beside the run records' "
                             "(each run dir gets prometheus_gates.json; the exit code stays the run records')")
    parser.add_argument("--exit-zero", action="store_true",
                        help="exit 0 whenever both runs completed (default: the fixed run's gate verdict, "
                             "0 pass, 1 fail, 3 unknown)")
    add_json_flag(parser)


@dataclass
class ProfileRun:
    out: Path
    verdicts: list
    code: int
    prometheus: list | None = None  # the same gates judged through Prometheus, when it watched
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProfilePlan:
    """One profile's run, resolved before anything runs: a bad flag or a taken directory
    must not be found after the other profile's minutes of emulation."""
    profile: str
    scenario: Scenario
    gates: list
    out: Path


def plan_profile(path: Path, profile: str, out: Path, args: argparse.Namespace) -> ProfilePlan:
    overrides = {"profile": profile, "seed": args.seed, "clients": args.clients, "time_scale": args.time_scale,
                 "clock": args.clock, **flag_overrides(args)}
    scenario = load(path, overrides)
    refuse_flags_on_virtual_clock(scenario, args)
    check_out_dir(out)
    return ProfilePlan(profile, scenario, list(scenario.checked_gates), out)


def run_profile(plan: ProfilePlan, args: argparse.Namespace, console: Console) -> ProfileRun:
    """One emulated run judged by its gates, as `stormbench run` does it."""
    from harness.emulate.engine import emulate

    scenario, out = plan.scenario, plan.out
    prepare_out_dir(out)
    pace = ("on the virtual clock" if scenario.virtual
            else f"at ×{scenario.time_scale:g} (~{scenario.wall_duration:.0f} s wall)")
    console.print(f"[bold]{scenario.name} --profile {plan.profile}[/bold]: {scenario.fleet.clients} clients, "
                  f"{scenario.duration / 3600:g} h {pace} → {out}")
    with ExitStack() as stack:
        watch = None
        if args.prometheus:
            from harness.prom.in_run import RunWatch

            watch = stack.enter_context(RunWatch(scrape_interval(scenario)))
        with engine_guard(out, "emulate"):
            # the panel only where this console draws on a terminal: the profiles of a virtual-clock
            # job run at once in two processes, and two panels on one terminal overwrite each other
            emulate(scenario, out, live=console.is_terminal, **(watch.hooks() if watch else {}))
        finalize(out)
        verdicts = evaluate(plan.gates, RunRecord(out))
        result = ProfileRun(out, verdicts, write_verdicts(verdicts, out, scenario.name))
        if watch is not None:
            result.prometheus = watch.judge(plan.gates, out, scenario.time_scale)
            merge_meta(out, {"prometheus": watch.facts()})
            result.warnings = tuple(watch.warnings)
    return result


def _run_profile_quietly(plan: ProfilePlan, args: argparse.Namespace) -> ProfileRun:
    """`run_profile` in a worker process (its console prints plain lines)."""
    return run_profile(plan, args, Console(force_terminal=False))


def before_after_table(run_dirs: list[Path]) -> Table:
    """The seed's table (scenarios/expectations/seed.yaml) with this machine's measurements; rows from `reports.compare`,
    so the printed table and the report's agree."""
    from reports.compare import compare
    from reports.record import load_run

    comparisons = compare([load_run(d) for d in run_dirs])
    if not comparisons:
        raise UsageError("the two runs could not be paired as legacy vs fixed for the before/after table")
    t = Table(title="before → after (seed expectation | measured here, per day of scenario time)")
    for col in ("metric", "seed before", "seed after", "measured legacy", "measured fixed", "change"):
        t.add_column(col)
    for row in comparisons[0].rows:
        t.add_row(row.metric.label, row.metric.seed_before or "—", row.metric.seed_after or "—",
                  row.before_text, row.after_text, row.change_text)
    return t


def verdicts_table(results: dict[str, list]) -> Table:
    """Gates down, one column per judged run (a profile, or a profile as Prometheus saw it); each
    cell the verdict and the observed value with its unit, in the words of JUnit and the report
    (`formats.gates.wording.quantity`: `9h03m`, `0.96ms`, `1,140`, never `3.263e+04`)."""
    t = Table(title="gate verdicts")
    t.add_column("gate")
    for label in results:
        t.add_column(label)
    style = {"pass": "green", "fail": "red", "unknown": "yellow"}
    names = [v.name for v in next(iter(results.values()))]
    for name in names:
        cells = []
        for verdicts in results.values():
            v = next((v for v in verdicts if v.name == name), None)
            if v is None:
                cells.append("—")
                continue
            metric, stat = str(v.provenance.get("metric", "")), str(v.provenance.get("stat", ""))
            observed = quantity(metric, stat, v.observed, with_noun=False)
            tag = "" if v.strict else " (advisory)"
            cells.append(f"[{style.get(v.verdict, 'white')}]{v.verdict}[/] {observed}{tag}")
        t.add_row(name, *cells)
    return t


def run(args: argparse.Namespace) -> int:
    console = output_console()
    started = time.monotonic()
    path = resolve_scenario_path(args.scenario)
    root = Path(args.out) if args.out else Path("runs") / f"main-job-{time.strftime('%Y%m%d-%H%M%S')}"
    plans = [plan_profile(path, profile, root / profile, args) for profile in PROFILES]
    if args.prometheus:
        require_prometheus_binary()
    if all(plan.scenario.virtual for plan in plans):
        with ProcessPoolExecutor(len(plans), mp_context=mp.get_context("spawn")) as pool:
            done = [pool.submit(_run_profile_quietly, plan, args) for plan in plans]
            runs = {plan.profile: d.result() for plan, d in zip(plans, done)}
    else:
        runs = {plan.profile: run_profile(plan, args, console) for plan in plans}
    dirs = [r.out for r in runs.values()]
    console.print(before_after_table(dirs))
    clock = "virtual clock" if plans[0].scenario.virtual else f"wall clock ×{plans[0].scenario.time_scale:g}"
    columns = {f"{profile} ({clock})": r.verdicts for profile, r in runs.items()}
    columns |= {f"{profile} (Prometheus)": r.prometheus for profile, r in runs.items() if r.prometheus is not None}
    console.print(verdicts_table(columns))
    note = (RunRecord(runs["fixed"].out).meta.get("clock") or {}).get("note")
    if note:
        console.print(f"[dim]{note}[/dim]")
    for profile, r in runs.items():
        warnings = RunRecord(r.out).meta.get("warnings", []) + list(r.warnings)
        for w in warnings[:MAX_WARNINGS]:
            console.print(f"[yellow]{profile}: {w}[/yellow]")
        if len(warnings) > MAX_WARNINGS:
            console.print(f"[yellow]{profile}: … {len(warnings) - MAX_WARNINGS} more in {r.out / 'meta.json'}[/yellow]")
    index = None
    if not args.no_report:
        from reports import render
        index = render(dirs, root / "report")
        console.print(f"report: {index}")
    console.print(f"run records: {', '.join(str(d) for d in dirs)}  (main job took "
                  f"{time.monotonic() - started:.0f} s)")
    fixed = outcome_line(runs["fixed"].verdicts).removeprefix(f"exit {runs['fixed'].code}: ")
    code = EXIT_OK if args.exit_zero else runs["fixed"].code
    set_document(args, {
        "scenario": plans[0].scenario.name,
        "runs": {profile: {**verdicts_document(r.verdicts), "summary": RunRecord(r.out).summary,
                           "run_dir": str(r.out),
                           **({"prometheus": verdicts_document(r.prometheus)} if r.prometheus is not None else {})}
                 for profile, r in runs.items()},
        "exit_code_from": "both runs completed (--exit-zero)" if args.exit_zero else "the fixed run's gates",
        "paths": {"root": str(root), **({"report": str(index)} if index else {})},
    })
    if args.exit_zero:
        console.print(f"exit {EXIT_OK} (--exit-zero): both runs completed; the fixed run's gates: {fixed}",
                      highlight=False)
    else:
        console.print(f"exit {code}: the fixed run's gates (--exit-zero for 0 whenever both runs complete): {fixed}",
                      highlight=False)
    return code
