"""`stormbench run SCENARIO`: one scenario through one engine into a run record, then the gates.

The engines are imported only when chosen (they pull in the server, the proxy or
SimPy); everything after the engine — finalize, gates, JUnit, the verdict table —
is the same for both, so their records are judged alike.
"""
from __future__ import annotations

import argparse
import difflib
import json
import sys
import time
import traceback
import urllib.error
import urllib.request
from contextlib import ExitStack, contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from cluster import executor
from commands.cli import CommandLineError, add_json_flag, set_document
from system.errors import UsageError
from formats.gates.evaluate import check_metrics, evaluate
from formats.gates.report import outcome_line, print_verdicts, write_verdicts
from formats.gates.spec import load_gates
from formats.gates.verdict import verdicts_document
from formats.record import files
from formats.record.finalize import finalize
from formats.record.run import RunRecord
from formats.record.selfcheck import describe as describe_self_check
from formats.record.writer import merge_meta, write_scenario
from formats.scenario import Scenario, load
from formats.scenario.fixes import add_fix_flags, flag_overrides, profile_label
from formats.scenario.model import CLOCKS
from system.units import format_duration, positive_int_arg, positive_int_or_all_arg

if TYPE_CHECKING:
    from harness.prom.in_run import RunWatch

HELP = "run a scenario (emulate or simulate) and judge its gates"
TARGET_TIMEOUT_S = 5.0  # for a --target or --toxiproxy-url to answer before the run
PLAIN_EVERY_S = 10.0  # a progress line in a log (not a terminal) at most this often
ENGINES = ("emulate", "simulate")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", metavar="SCENARIO",
                        help="a scenario file, or the name of one in the library (e.g. staging-day)")
    parser.add_argument("--engine", choices=ENGINES, default="emulate",
                        help="emulate: real server, proxy and clients on this machine; simulate: the SimPy model "
                             "(default: emulate)")
    parser.add_argument("--out", metavar="DIR",
                        help="run record directory (default: runs/<scenario>-<engine>-<timestamp>)")
    parser.add_argument("--seed", type=int, metavar="N", help="override the scenario's seed (default: its `seed`)")
    parser.add_argument("--clients", type=int, metavar="N",
                        help="override the fleet size: sets fleet.clients and fleet.sim_clients "
                             "(default: the scenario's)")
    parser.add_argument("--time-scale", type=float, metavar="X",
                        help="override the emulation's time compression, in scenario seconds per wall second "
                             "(default: the scenario's time_scale; the simulation ignores it)")
    add_clock_flag(parser)
    parser.add_argument("--profile", choices=("legacy", "fixed"),
                        help="name the whole system: client profile and server behaviour together "
                             "(default: the scenario's fleet.profile and system.behaviour)")
    add_fix_flags(parser)
    parser.add_argument("--gates", metavar="FILE", help="judge with this gate file instead of the scenario's gates")
    parser.add_argument("--target", metavar="URL",
                        help="emulate only: use this running system instead of starting one: "
                             "'ws://H:P,http://H:P', or one HTTP URL serving both; admin key from "
                             "$STORMBENCH_ADMIN_KEY")
    parser.add_argument("--toxiproxy-url", metavar="URL",
                        help="emulate only: use this Toxiproxy server instead of the embedded proxy")
    parser.add_argument("--prometheus", action="store_true",
                        help="emulate only: start a real Prometheus (`prometheus` on PATH) scraping the server's "
                             "/metrics during the run, judge the gates through it too and write "
                             "prometheus_gates.json (the exit code stays the run record's)")
    parser.add_argument("--keep-prometheus", metavar="DIR",
                        help="with --prometheus: keep its TSDB in DIR (a new directory) and print how to start a "
                             "Prometheus on it for `stormbench gates --prometheus` (default: thrown away)")
    parser.add_argument("--report", action="store_true",
                        help="also render the HTML/PNG/Markdown report into the run record's report/ folder")
    parser.add_argument("--replications", type=positive_int_arg, default=1, metavar="N",
                        help="simulate only: run seeds SEED..SEED+N-1 in parallel on Dask (--cluster); summary.json gains "
                             "95%% confidence intervals (replication 0 is the main record; default 1)")
    parser.add_argument("--agents", type=positive_int_or_all_arg, metavar="N|all",
                        help="simulate only: follow at most N clients one by one; a larger fleet is simulated by N "
                             "agents, each standing for several clients (`weight`, stated in the record and the "
                             "report); `all`: one agent per client, whose CPU time grows with the fleet "
                             "(default 5,000: sim.engine.MAX_AGENTS)")
    parser.add_argument("--calibration", metavar="FILE",
                        help="simulate only: model calibration file from `stormbench calibrate` "
                             "(default: the built-in formats/calibration_default.json)")
    executor.add_argument(parser, also="; with --engine emulate and --target (this flag only): the client "
                                       "fleet runs on the scheduler's workers, one share each")
    add_json_flag(parser)


def add_clock_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clock", choices=CLOCKS,
                        help="the emulation's clock: virtual (server, proxy and clients on one event loop on scenario "
                             "time, true time constants, repeatable; capacity not measured) or wall (real processes, "
                             "compressed by --time-scale) (default: the scenario's `clock`)")


def refuse_flags_on_virtual_clock(scenario: Scenario, args: argparse.Namespace) -> None:
    """`--clock virtual` with a flag naming another process (a target, a Toxiproxy, a Prometheus):
    refused before anything runs or is contacted."""
    if scenario.virtual and getattr(args, "engine", "emulate") == "emulate":
        from harness.emulate.engine import refuse_on_virtual_clock

        refuse_on_virtual_clock(target=getattr(args, "target", None),
                                toxiproxy_url=getattr(args, "toxiproxy_url", None),
                                prometheus=bool(getattr(args, "prometheus", False)))


def resolve_scenario_path(name: str) -> Path:
    """A path as given, else a library scenario by name."""
    path = Path(name)
    if path.exists():
        return path
    library = Path(str(resources.files("scenarios")))
    for candidate in (library / name, library / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    known = sorted(p.stem for p in library.glob("*.yaml"))
    close = difflib.get_close_matches(Path(name).stem, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise CommandLineError(f"{name}: no such scenario file, and not a library scenario{hint} "
                           f"(library: {', '.join(known)})")


def default_out_dir(scenario: Scenario, engine: str) -> Path:
    return Path("runs") / f"{scenario.name}-{engine}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_out_dir(out: Path) -> None:
    """Refuse to write over an earlier run record: a rerun must never destroy evidence."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file, expected a directory for the run record")
    if out.exists() and any((out / f).exists() for f in (files.EVENTS, files.CONNECTIONS, files.SUMMARY)):
        raise UsageError(f"--out {out}: already holds a run record; choose another directory")


def prepare_out_dir(out: Path) -> None:
    """`check_out_dir`, then create it: an unwritable place is said before anything runs."""
    check_out_dir(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".stormbench-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None


@contextmanager
def engine_guard(out: Path, engine: str) -> Iterator[None]:
    """Whatever stops an engine, the record written so far stays, and says it is partial
    (`meta.json` `incomplete`), so a later `gates` or `report` does not take it for a whole run."""
    started = time.monotonic()
    try:
        yield
    except UsageError as exc:  # found by the engine once running: the record is as partial as after a crash
        mark_incomplete(out, str(exc))
        raise
    except KeyboardInterrupt as exc:  # replications say what they kept; one run keeps its partial record
        mark_incomplete(out, f"interrupted (Ctrl-C) after {time.monotonic() - started:.0f} s of wall time")
        raise KeyboardInterrupt(str(exc) or f"the partial record is in {out} (not finalized or judged)") from None
    except Exception as exc:  # the traceback goes next to the record, not over the screen
        (out / files.ENGINE_ERROR).write_text(traceback.format_exc())
        mark_incomplete(out, f"the {engine} engine stopped: {type(exc).__name__}: {exc}")
        raise UsageError(f"the {engine} engine stopped: {type(exc).__name__}: {exc} "
                         f"(traceback in {out / files.ENGINE_ERROR}; the partial record is kept)") from None


def mark_incomplete(out: Path, why: str) -> None:
    try:
        merge_meta(out, {files.META_INCOMPLETE: why})
    except OSError:
        pass  # the record stays as it is; the message on the screen still says why


def check_prometheus(args: argparse.Namespace) -> None:
    """`--prometheus` needs the emulation and the binary: say so before anything runs."""
    if not args.prometheus:
        return
    if args.engine != "emulate":
        raise UsageError("--prometheus applies to --engine emulate only (the model has no server to scrape)")
    require_prometheus_binary()


def keep_dir(args: argparse.Namespace) -> Path | None:
    """`--keep-prometheus DIR`: needs --prometheus, and a place that holds no TSDB yet."""
    if args.keep_prometheus is None:
        return None
    if not args.prometheus:
        raise UsageError("--keep-prometheus: applies with --prometheus only (it keeps that Prometheus' TSDB)")
    keep = Path(args.keep_prometheus)
    if keep.exists() and (not keep.is_dir() or (keep / "tsdb").exists()):
        raise UsageError(f"--keep-prometheus {keep}: expected a new or empty directory (it holds a file or a TSDB)")
    return keep


def require_prometheus_binary() -> None:
    from harness.prom.server import find_binary

    if find_binary() is None:
        raise UsageError("--prometheus: the `prometheus` binary is not on PATH "
                         "(install the Debian package `prometheus`, or run without --prometheus)")


def check_engine_flags(args: argparse.Namespace) -> None:
    """One engine's options mean nothing to the other: refuse them rather than ignore them."""
    if args.engine == "simulate":
        given = [flag for flag, on in (("--target", args.target), ("--toxiproxy-url", args.toxiproxy_url)) if on]
        if given:
            raise UsageError(f"{' and '.join(given)}: for --engine emulate only (the model starts no system)")
        return
    given = [flag for flag, on in (("--replications", args.replications > 1),
                                   ("--agents", args.agents is not None),
                                   ("--calibration", args.calibration is not None)) if on]
    if given:
        raise UsageError(f"{' and '.join(given)}: for --engine simulate only (the emulation measures "
                         f"the real system once per run)")
    if args.cluster and not args.target:
        raise UsageError("--cluster with --engine emulate: give --target too (the cluster's workers run the "
                         "clients against a system they can reach; the system this command would start "
                         "listens on 127.0.0.1 only)")
    if args.target:
        check_target(args.target)
    if args.toxiproxy_url:
        check_answers("--toxiproxy-url", args.toxiproxy_url, f"{args.toxiproxy_url.rstrip('/')}/version")


def check_target(target: str) -> None:
    from harness.emulate.engine import parse_target

    check_answers("--target", target, f"{parse_target(target).http_url}/healthz")


def check_answers(flag: str, value: str, url: str) -> None:
    """A system named on the command line that does not answer would cost a whole run that
    observes nothing: ask it first (any HTTP answer will do; the emulation judges the rest)."""
    try:
        urllib.request.urlopen(url, timeout=TARGET_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return  # it answered
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UsageError(f"{flag} {value}: nothing answers at {url} ({reason}); is it running?") from None


def scrape_interval(scenario: Scenario) -> float:
    """Prometheus' scrape interval: 1 s, down to 0.5 s for runs shorter than a wall minute
    (a rate needs a few samples in the window)."""
    wall = scenario.duration / scenario.time_scale
    return 1.0 if wall >= 60 else 0.5


def run_engine(engine: str, scenario: Scenario, out: Path, args: argparse.Namespace,
               watch: "RunWatch | None" = None) -> dict | None:
    """Fill `out` with the raw record; return the replications block when the model ran several seeds."""
    if engine == "emulate":
        try:
            from harness.emulate.engine import emulate
        except ImportError as exc:
            raise UsageError(f"the emulation engine is not available in this build ({exc})") from None
        hooks = watch.hooks() if watch else {}
        emulate(scenario, out, target=args.target, toxiproxy_url=args.toxiproxy_url, cluster=args.cluster, **hooks)
        return None
    try:
        from sim.calibration import load as load_calibration
        from sim.engine import simulate
        from sim.replicate import replicate
    except ImportError as exc:
        raise UsageError(f"the simulation engine is not available in this build ({exc})") from None
    try:
        load_calibration(args.calibration)  # a bad file is a usage error before anything runs
    except ValueError as exc:
        raise UsageError(f"--calibration: {exc}") from None
    calibration = args.calibration  # by path, so the record names the file
    if args.replications > 1:  # cluster.executor shows each seed as it finishes
        return replicate(scenario, out, args.replications, calibration=calibration,
                         cluster=executor.address(args.cluster), max_agents=args.agents)["replications"]
    # the emulation draws its own live view; the model only reports how far it is
    with model_progress(f"simulating {scenario.name}") as progress:
        simulate(scenario, out, calibration=calibration, progress=progress, max_agents=args.agents)
    return None


@contextmanager
def model_progress(label: str) -> Iterator[Callable[[float], None]]:
    """How far the model is: a bar on a terminal; in a log, the label, then a line every
    PLAIN_EVERY_S as the emulation's plain view does, and the time it took."""
    started = time.monotonic()
    if Console().is_terminal:
        with Progress(TextColumn(label), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                      transient=True) as bar:
            task = bar.add_task("model", total=None)  # indeterminate until the model says how far it is
            yield lambda done: bar.update(task, total=1.0, completed=done)
        return
    print(f"{label} ...", flush=True)
    last = started

    def plain(done: float) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= PLAIN_EVERY_S:
            last = now
            print(f"{label}: {done:.0%} after {now - started:.0f} s", flush=True)

    yield plain
    print(f"{label}: done in {time.monotonic() - started:.0f} s", flush=True)


def render_report(out: Path) -> Path | None:
    try:
        from reports import render
    except ImportError as exc:
        print(f"stormbench run: --report: reports are not available in this build ({exc})")
        return None
    report = render([out], out / "report")
    print(f"report: {report}")
    return report


def record_paths(out: Path) -> dict[str, str]:
    """The files of a judged run record a CI step may pick up (those that exist)."""
    named = {"run_dir": out, "gates_json": out / files.GATES, "junit": out / files.JUNIT,
             "prometheus_gates": out / "prometheus_gates.json", "report": out / "report" / "index.html"}
    return {key: str(path) for key, path in named.items() if path.exists()}


def _lifetime(summary: dict) -> str:
    if summary["duration_p95_s"] is not None:
        return format_duration(summary["duration_p95_s"])
    longest = summary.get("duration_observed_max_s")
    return f"> {format_duration(longest)} (not reached)" if longest else "n/a"


def _print_intervals(block: dict) -> None:
    print(f"replications: {block['n']} seeds {block['seeds']}, mean and {block['level']:.0%} interval:")
    for key, m in block["metrics"].items():
        if m["mean"] is None:
            continue
        ci = "" if m["ci"] is None else f"  [{m['ci'][0]:.4g}, {m['ci'][1]:.4g}]"
        print(f"  {key:<24}{m['mean']:>12.4g}{ci}")


def run(args: argparse.Namespace) -> int:
    overrides = {"seed": args.seed, "clients": args.clients, "time_scale": args.time_scale, "profile": args.profile,
                 "clock": args.clock, **flag_overrides(args)}
    scenario = load(resolve_scenario_path(args.scenario), overrides)
    refuse_flags_on_virtual_clock(scenario, args)
    check_prometheus(args)
    keep = keep_dir(args)
    check_engine_flags(args)
    gates = list(scenario.checked_gates)
    if args.gates:
        gates = load_gates(args.gates)
        check_metrics(gates, args.gates)
    out = Path(args.out) if args.out else default_out_dir(scenario, args.engine)
    prepare_out_dir(out)
    write_scenario(out, scenario)
    with ExitStack() as stack:
        watch = None
        if args.prometheus:
            from harness.prom.in_run import RunWatch

            watch = stack.enter_context(RunWatch(scrape_interval(scenario), keep))
        with engine_guard(out, args.engine):
            replications = run_engine(args.engine, scenario, out, args, watch)
        summary = finalize(out)
        if replications is not None:  # finalize rewrites summary.json; the intervals belong in it
            summary["replications"] = replications
            (out / files.SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
        verdicts = evaluate(gates, RunRecord(out))
        code = write_verdicts(verdicts, out, scenario.name)
        prom_verdicts = watch.judge(gates, out, scenario.time_scale) if watch else None
    clock = ("virtual clock" if scenario.virtual else f"wall clock ×{scenario.time_scale:g}") \
        if args.engine == "emulate" else "model"
    title = f"{scenario.name} ({args.engine}, {profile_label(scenario.to_dict())}, {clock}, seed {scenario.seed})"
    print_verdicts(verdicts, title=title, outcome=False)
    if watch is not None:
        merge_meta(out, {"prometheus": watch.facts()})
        for warning in watch.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        if prom_verdicts is not None:
            print_verdicts(prom_verdicts, title=f"{title} via Prometheus (not in the exit code)", outcome=False)
        if keep is not None:
            gates_file = keep / "gates.yaml"
            gates_file.write_text(yaml.safe_dump([g.to_dict() for g in gates], sort_keys=False, allow_unicode=True))
            lines = watch.replay_instructions(str(gates_file), scenario.time_scale)
            print(f"Prometheus TSDB kept in {keep / 'tsdb'}; to judge this run through it again:" if lines else
                  f"Prometheus TSDB kept in {keep / 'tsdb'} (the run ended before Prometheus watched it)")
            for line in lines:
                print(f"  {line}")
    print(f"run record: {out}  connections {summary['connections']}, p95 lifetime {_lifetime(summary)}, "
          f"403s {summary['http_403']}, lost {summary['lost_messages']}, "
          f"duplicates {summary['duplicates_displayed']}, storms {summary['storms']}"
          + (f" (counts for all {summary['clients']:,} clients: each simulated client stood for "
             f"{summary['sampling_weight']})" if summary.get("sampling_weight", 1) > 1 else ""))
    check = describe_self_check(RunRecord(out).meta.get("self_check"))
    if check:
        print(f"self-check: {'; '.join(check)}")
    if "replications" in summary:
        _print_intervals(summary["replications"])
    if args.report:
        render_report(out)
    print(outcome_line(verdicts))
    document = {"scenario": scenario.name, "engine": args.engine, "seed": scenario.seed,
                **verdicts_document(verdicts), "summary": summary, "paths": record_paths(out)}
    if prom_verdicts is not None:
        document["prometheus"] = verdicts_document(prom_verdicts)
    set_document(args, document)
    return code
