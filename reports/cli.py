"""`stormbench report RUN_DIR [RUN_DIR ...] [--out DIR]`."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "render HTML/PNG/Markdown reports from run records"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                        help="run-record directories (or sweep directories holding sweep.json); a directory "
                             "holding none itself, such as a main job's or runs/, stands for the records up to "
                             "3 levels below it; a legacy and a fixed run of one scenario give the before/after "
                             "table")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="where to write index.html, summary.md and the PNGs "
                             "(default: reports/out/<run names>)")


def run(args: argparse.Namespace) -> int:
    from system.errors import UsageError
    from reports.record import expand
    from reports.render import render

    try:  # a path that holds no run record is a RecordError, a UsageError the dispatcher prints
        index = render(expand(args.run_dirs), args.out)
    except OSError as exc:
        where = f"--out {args.out}" if args.out else str(exc.filename or "the report directory")
        raise UsageError(f"{where}: cannot write the report there ({exc.strerror or exc})") from None
    print(index)
    return 0
