"""The `stormbench` console script: one entry point, one subcommand per module.

Subcommands live next to the code they drive; this file only knows their names
and where they are, and imports a module when its subcommand is used, so that
`stormbench serve` does not pay for pandas and matplotlib. Each module named in
COMMANDS provides:

    HELP: str                                   one line for `stormbench --help`
    def configure(parser: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace) -> int    the process exit code

Exit codes shared by every subcommand: 0 success (every strict gate passed),
1 a strict gate failed, 2 usage, input or environment error, 3 a gate is
unknown and none failed; 130 interrupted (Ctrl-C).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from system.errors import UsageError  # re-exported: subcommands raise commands.cli.UsageError

# name -> (module, one-line help shown even when the module cannot be imported)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("system.server.cli", "run the chat server (WebSocket + HTTP auth/metrics/admin)"),
    "seed-db": ("system.agent.cli", "generate the listings database for the real-estate agent"),
    "client": ("system.client.cli", "run reference clients (legacy/fixed policy) against a server"),
    "proxy": ("harness.proxy.cli", "run the Toxiproxy-compatible fault proxy"),
    "run": ("commands.run", "run a scenario (emulate or simulate) and judge its gates"),
    "gates": ("commands.gates", "judge gates on a run record or a live Prometheus; emit alert rules"),
    "validate": ("commands.validate", "run both engines on a scenario and print the error table"),
    "sweep": ("commands.sweep", "simulate a scenario over a parameter grid"),
    "calibrate": ("commands.calibrate", "measure this machine's server for the model"),
    "report": ("reports.cli", "render HTML/PNG/Markdown reports from run records"),
    "main-job": ("commands.main_job", "the `make run` job: staging-day legacy vs fixed, before/after table"),
}

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_UNKNOWN = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports a SIGINT death (128 + 2)


def _load(name: str):
    module_name, _ = COMMANDS[name]
    return importlib.import_module(module_name)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stormbench",
        description="Simulation and resilience test bench for real-time chat systems.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, summary) in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=summary, add_help=False)
            continue
        sp = sub.add_parser(name, help=summary, description=summary)
        if only is not None:
            _load(name).configure(sp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    if chosen not in COMMANDS:
        parser = build_parser()
        if chosen is None and not argv:
            parser.print_help()
            return EXIT_USAGE
        parser.parse_args(argv)  # prints --help or the "invalid choice" error
        return EXIT_USAGE
    try:
        parser = build_parser(only=chosen)
    except ModuleNotFoundError as exc:
        print(f"stormbench {chosen}: not available in this build ({exc})", file=sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(argv)
    try:
        return int(_load(chosen).run(args) or 0)
    except UsageError as exc:
        print(f"stormbench {chosen}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # the environment refused (a path, a permission, a full disk): say which, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"stormbench {chosen}: error: {where}{exc.strerror or exc} ({type(exc).__name__})", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:  # a command may say what it kept, as the exception's message
        detail = f": {exc}" if str(exc) else ""
        print(f"stormbench {chosen}: interrupted{detail}", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    # Run as `python -m commands.cli`: this module is __main__, so subcommands that raise
    # commands.cli.UsageError would raise a different class than ours; dispatch through it.
    from commands.cli import main as _main

    sys.exit(_main())
