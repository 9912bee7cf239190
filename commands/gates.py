"""`stormbench gates`: re-judge a run record, judge a live Prometheus, or emit alert rules.

The Prometheus parts belong to `harness.prom` and are imported only when asked for.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from commands.cli import add_json_flag, set_document
from system.errors import UsageError
from formats.gates.evaluate import check_metrics, evaluate
from formats.gates.report import Suite, print_verdicts, write_verdicts
from formats.gates.verdict import verdicts_document
from formats.gates.spec import Gate, load_gates
from formats.record import files
from formats.record.finalize import finalize
from formats.record.run import RunRecord
from system.units import parse_duration

HELP = "judge gates on a run record or a live Prometheus; emit alert rules"
WINDOW_DEFAULT = "24h"
FOR_DEFAULT = "5m"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", nargs="?", metavar="RUN_DIR",
                        help="a run record directory to re-judge (writes gates.json and junit.xml into it)")
    parser.add_argument("--gates", metavar="FILE",
                        help="gate file (YAML); default: the gates in RUN_DIR's scenario.json")
    parser.add_argument("--prometheus", metavar="URL",
                        help="judge the gates against this Prometheus server's HTTP API instead of a run record")
    parser.add_argument("--window", default=WINDOW_DEFAULT, metavar="DURATION",
                        help=f"with --prometheus: how far back from --end to judge; with --emit-rules: the "
                             f"window each rule looks back over; e.g. 6h or 90m (default {WINDOW_DEFAULT})")
    parser.add_argument("--end", metavar="TIME",
                        help="with --prometheus: end of the window (RFC 3339 or unix seconds; default now)")
    parser.add_argument("--time-scale", type=float, default=1.0, metavar="X",
                        help="with --prometheus: the judged run's time compression (scenario seconds per wall "
                             "second; default 1, a live system), so durations and rates read in scenario time")
    parser.add_argument("--emit-rules", metavar="FILE",
                        help="write Prometheus recording and alerting rules for the gates to FILE")
    parser.add_argument("--for", dest="for_", default=FOR_DEFAULT, metavar="DURATION",
                        help=f"with --emit-rules: how long a gate must fail before its alert fires "
                             f"(Prometheus `for`; 0 fires at once; default {FOR_DEFAULT})")
    parser.add_argument("--out", metavar="DIR",
                        help="where to write gates.json and junit.xml (default: RUN_DIR, or the current "
                             "directory with --prometheus)")
    parser.add_argument("--quiet", action="store_true",
                        help="print only the gates that did not pass (nothing when every gate passed); the exit "
                             "code tells the rest")
    add_json_flag(parser)


def _gates(args: argparse.Namespace) -> list[Gate]:
    if args.gates:
        return load_gates(args.gates)
    if args.run_dir:
        return load_gates(RunRecord(args.run_dir).scenario.get("gates", []))
    raise UsageError("no gates: pass --gates FILE (or a RUN_DIR whose scenario has gates)")


def _prom():
    try:
        import harness.prom as prom
    except ImportError as exc:
        raise UsageError(f"--prometheus and --emit-rules need harness.prom, which is not available ({exc})") from None
    return prom


def _incomplete_warning(rec: RunRecord) -> None:
    why = rec.meta.get(files.META_INCOMPLETE)
    if why:
        print(f"warning: {rec.dir}: the run did not finish ({why}); the verdicts judge only what it recorded",
              file=sys.stderr)


def _duration_flag(flag: str, value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def _emit_rules(gates: list[Gate], path: str, window: str, for_: str) -> None:
    seconds = _duration_flag("--window", window)
    if seconds <= 0:
        raise UsageError(f"--window {window}: must be longer than 0s")
    hold = _duration_flag("--for", for_)
    prom = _prom()
    try:  # Prometheus's own duration syntax: a bare `90` or `1h30m` would not load there
        left_out = prom.emit_rules(gates, path, window=seconds, for_=prom.promql.duration(hold) if hold else "0")
    except OSError as exc:
        raise UsageError(f"--emit-rules {path}: cannot write the rule file ({exc.strerror or exc})") from None
    print(f"wrote {path}: rules for {len(gates) - len(left_out)} of {len(gates)} gate(s)")
    for name, why in left_out:
        print(f"  left out {name!r}: {why}")


def run(args: argparse.Namespace) -> int:
    if not (args.run_dir or args.prometheus or args.emit_rules):
        raise UsageError("nothing to judge: give a RUN_DIR, --prometheus URL or --emit-rules FILE")
    if args.run_dir and args.prometheus:
        raise UsageError(f"give a RUN_DIR ({args.run_dir}) or --prometheus URL, not both: one command judges one "
                         "source")
    if args.window != WINDOW_DEFAULT and not (args.prometheus or args.emit_rules):
        raise UsageError("--window: applies with --prometheus URL or --emit-rules FILE only (a run record is "
                         "judged over its whole run)")
    if args.end is not None and not args.prometheus:
        raise UsageError("--end: applies with --prometheus URL only (a run record is judged over its whole run)")
    if args.time_scale != 1.0 and not args.prometheus:
        raise UsageError("--time-scale: applies with --prometheus URL only (a run record knows its own)")
    if args.time_scale <= 0:
        raise UsageError(f"--time-scale {args.time_scale:g}: expected a positive number")
    if args.for_ != FOR_DEFAULT and not args.emit_rules:
        raise UsageError("--for: applies with --emit-rules FILE only (it is the alerts' `for`)")
    gates = _gates(args)
    if args.emit_rules:
        _emit_rules(gates, args.emit_rules, args.window, args.for_)
        set_document(args, {"paths": {"rules": args.emit_rules}})
        if not (args.run_dir or args.prometheus):
            return 0
    if args.prometheus:
        window = _duration_flag("--window", args.window)
        verdicts = _prom().evaluate(gates, args.prometheus, window, args.end, time_scale=args.time_scale)
        out = Path(args.out or ".")
        suite = Suite("prometheus")
    else:
        rec = RunRecord(args.run_dir)
        check_metrics(gates, args.gates or f"{rec.dir / files.SCENARIO}: $.gates")
        _incomplete_warning(rec)
        if not (rec.has(files.CONNECTIONS) and rec.has(files.TIMESERIES) and rec.has(files.SUMMARY)):
            finalize(rec.dir)
        verdicts = evaluate(gates, RunRecord(rec.dir))
        out = Path(args.out or rec.dir)
        suite = Suite.of(rec)
    try:
        out.mkdir(parents=True, exist_ok=True)
        code = write_verdicts(verdicts, out, suite)
    except OSError as exc:
        where = f"--out {out}" if args.out else str(out)
        raise UsageError(f"{where}: cannot write gates.json and junit.xml there ({exc.strerror or exc})") from None
    print_verdicts(verdicts, title=f"gates: {suite.name}", quiet=args.quiet)
    paths = {"gates_json": str(out / files.GATES), "junit": str(out / files.JUNIT)}
    if args.emit_rules:
        paths["rules"] = args.emit_rules
    document = {"source": args.prometheus or str(args.run_dir), **verdicts_document(verdicts), "paths": paths}
    if not args.prometheus:
        document["summary"] = RunRecord(args.run_dir).summary
    set_document(args, document)
    return code
