"""`stormbench ablate SCENARIO`: the base profile, then the base with each fix added alone; which
fixes move which gates and counts.

"Which fix removes the 403s?" took one hand-written scenario per fix. This is a sweep over
`fix=none,a,b,...` (`commands.sweep`, so each point is a judged run record in `point-NNN/` and
`sweep.json` is written, also after a Ctrl-C), followed by the comparison with the base run.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from system.errors import UsageError
from formats.scenario.fixes import check_fix, known_fixes
from system.units import positive_int_arg

HELP = "run the base profile with each fix added alone; say which fixes move which gates"
#: counts an ablation compares: a fix "removes" one it brings to at most REMOVED of the base
METRICS = ("http_403", "manual_refreshes", "duplicates_displayed", "lost_messages", "storms",
           "reconnect_attempts", "peak_reconnects_per_s", "clients_never_connected", "turned_away")
REMOVED = 0.01
CUT = 0.5


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", metavar="SCENARIO", help="a scenario file, or the name of a library scenario")
    parser.add_argument("--profile", choices=("legacy", "fixed"), default="legacy",
                        help="the base system the fixes are added to (default: legacy)")
    parser.add_argument("--fixes", metavar="A,B,...",
                        help=f"the fixes to try, one at a time (default: every one: {', '.join(known_fixes())})")
    parser.add_argument("--clients", type=positive_int_arg, metavar="N",
                        help="override the fleet size (fleet.clients and fleet.sim_clients): a smaller fleet is faster")
    parser.add_argument("--out", metavar="DIR", help="ablation directory (default: runs/<scenario>-ablate-<timestamp>); one holding the "
                             "same ablation is resumed (the fixes already run are skipped), one holding "
                             "another sweep is refused")
    parser.add_argument("--calibration", metavar="FILE",
                        help="model calibration file (default: the built-in formats/calibration_default.json)")


def moves(base: dict, entry: dict) -> tuple[list[str], list[str]]:
    """(gates whose verdict changed, counts the fix removed or cut), against the base point."""
    before = {g["name"]: g["verdict"] for g in base["gates"]}
    gates = [f"{g['name']}: {before.get(g['name'])} -> {g['verdict']}" for g in entry["gates"]
             if before.get(g["name"]) != g["verdict"]]
    counts = []
    for key in METRICS:
        was, now = base["summary"].get(key), entry["summary"].get(key)
        if not isinstance(was, (int, float)) or not isinstance(now, (int, float)) or was <= 0:
            continue
        if now <= REMOVED * was:
            counts.append(f"removes {key} ({_n(was)} -> {_n(now)})")
        elif now <= CUT * was:
            counts.append(f"cuts {key} ({_n(was)} -> {_n(now)})")
        elif now >= was / CUT:
            counts.append(f"raises {key} ({_n(was)} -> {_n(now)})")
    return gates, counts


def _n(value: Any) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def report(doc: dict, echo=print) -> dict[str, list[str]]:
    """Print which fix moves what; returns {count metric: fixes that remove it}."""
    points = [p for p in doc["points"] if "summary" in p]
    base = next((p for p in points if p["params"].get("fix") in (None, "none")), None)
    if base is None:
        echo("ablation: the base run did not finish; nothing to compare")
        return {}
    echo(f"\nablation of {doc['scenario']} on {base['profile']}: what each fix alone changes "
         f"(a server fix is named by the legacy trait it removes)")
    removed: dict[str, list[str]] = {}
    for entry in points:
        if entry is base:
            continue
        gates, counts = moves(base, entry)
        echo(f"  {entry['profile']}:")
        echo(f"    gates: {'; '.join(gates) or 'no verdict changes'}")
        echo(f"    counts: {'; '.join(counts) or 'no count halved or removed'}")
        for line in counts:
            if line.startswith("removes "):
                removed.setdefault(line.split()[1], []).append(str(entry["params"]["fix"]))
    for key, fixes in removed.items():
        echo(f"{key} removed by: {', '.join(fixes)}")
    failing = [g["name"] for g in base["gates"] if g["verdict"] == "fail"]
    for name in failing:
        fixers = [str(p["params"]["fix"]) for p in points if p is not base and
                  any(g["name"] == name and g["verdict"] == "pass" for g in p["gates"])]
        echo(f"gate {name!r} (fails on {base['profile']}) passes with: {', '.join(fixers) or 'no single fix'}")
    return removed


def run(args: argparse.Namespace) -> int:
    from commands.run import resolve_scenario_path
    from commands.sweep import sweep

    path = resolve_scenario_path(args.scenario)
    fixes = [check_fix(f.strip(), "--fixes") for f in args.fixes.split(",") if f.strip()] if args.fixes \
        else list(known_fixes())
    if not fixes:
        raise UsageError("--fixes: name at least one fix")
    out = Path(args.out) if args.out else Path("runs") / f"{path.stem}-ablate-{time.strftime('%Y%m%d-%H%M%S')}"
    base = {"profile": args.profile, "clients": args.clients}
    try:
        doc = sweep(path, {"fix": ["none", *fixes]}, out, calibration=args.calibration, base=base)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    report(doc)
    print(f"ablation: {out / 'sweep.json'}")
    return 0
