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

A subcommand that takes `--json` (`add_json_flag`) hands its result to `set_document`;
the dispatcher then sends everything the command prints, its child processes' output
included, to stderr, and writes exactly one JSON document on stdout: the result, or the
error that stopped it, with the exit code either way. A CI step can then pipe stdout to
`jq` whatever happened.
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import json
import os
import sys
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Iterator, Sequence

from system.errors import UsageError  # re-exported: subcommands raise commands.cli.UsageError


class CommandLineError(UsageError):
    """An error in the command line itself (a scenario name, a flag's value): said with the
    subcommand's usage, as argparse says its own errors."""


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
    "ablate": ("commands.ablate", "run the base profile with each fix added alone; which fixes move which gates"),
    "calibrate": ("commands.calibrate", "measure this machine's server for the model"),
    "dashboard": ("harness.prom.dashboard", "write the Grafana dashboard (server metrics and a panel per gate)"),
    "report": ("reports.cli", "render HTML/PNG/Markdown reports from run records"),
    "main-job": ("commands.main_job", "the `make run` job: staging-day legacy vs fixed, before/after table"),
}

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_UNKNOWN = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports a SIGINT death (128 + 2)


def package_version() -> str:
    try:
        return version("stormbench")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document on stdout (verdicts, summary, paths, exit_code); "
                             "the human-readable output goes to stderr")


def set_document(args: argparse.Namespace, document: dict[str, Any]) -> None:
    """The command's result for `--json` (ignored without it)."""
    args.json_document = document


@contextmanager
def _stdout_to_stderr() -> Iterator[Any]:
    """Point fd 1 (and sys.stdout) at stderr for the duration; yield a stream on the real stdout.
    At the descriptor level, so that what child processes print cannot reach the document."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    original = sys.stdout
    sys.stdout = sys.stderr
    try:
        with os.fdopen(os.dup(saved), "w", encoding="utf-8") as real:
            yield real
    finally:
        sys.stdout.flush()
        sys.stdout = original
        os.dup2(saved, 1)
        os.close(saved)


def _load(name: str):
    module_name, _ = COMMANDS[name]
    return importlib.import_module(module_name)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stormbench",
        description="Simulation and resilience test bench for real-time chat systems.",
    )
    parser.add_argument("--version", action="version", version=f"stormbench {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, summary) in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=summary, add_help=False)
            continue
        sp = sub.add_parser(name, help=summary, description=summary)
        if only is not None:
            _load(name).configure(sp)
    parser.subcommands = sub.choices  # type: ignore[attr-defined]  # not in the namespace: args are pickled to workers
    return parser


def _nearest(word: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _parse(parser: argparse.ArgumentParser, chosen: str, argv: list[str]) -> argparse.Namespace:
    """Parse, and refuse a misspelt flag with the subcommand's usage and the nearest flag (argparse
    would give the top-level usage and no hint)."""
    args, extras = parser.parse_known_args(argv)
    if extras:
        sub = parser.subcommands[chosen]
        flags = [f for action in sub._actions for f in action.option_strings]  # noqa: SLF001 (argparse has no public list)
        word = next((e for e in extras if e.startswith("-")), extras[0])
        hint = _nearest(word.split("=")[0], flags) if word.startswith("-") else ""
        sub.error(f"unrecognized argument{'s' if len(extras) > 1 else ''}: {' '.join(extras)}{hint}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    if chosen not in COMMANDS:
        parser = build_parser()
        if chosen is None and not argv:
            parser.print_help()
            return EXIT_USAGE
        if chosen is not None:
            parser.error(f"unknown command {chosen!r}{_nearest(chosen, list(COMMANDS))}; "
                         f"commands: {', '.join(COMMANDS)}")
        parser.parse_args(argv)  # prints --help or the error
        return EXIT_USAGE
    try:
        parser = build_parser(only=chosen)
    except ModuleNotFoundError as exc:
        print(f"stormbench {chosen}: not available in this build ({exc})", file=sys.stderr)
        return EXIT_USAGE
    args = _parse(parser, chosen, argv)
    if not getattr(args, "json", False):
        return _dispatch(parser, chosen, args)[0]
    with _stdout_to_stderr() as real_stdout:
        code, error = _dispatch(parser, chosen, args)
        document = {"command": chosen, "version": package_version(), "exit_code": code}
        document |= {"error": error} if error else getattr(args, "json_document", {})
        real_stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    return code


def _dispatch(parser: argparse.ArgumentParser, chosen: str, args: argparse.Namespace) -> tuple[int, str | None]:
    """The exit code, and the one-line error that stopped the command (None when it ran through)."""
    try:
        return int(_load(chosen).run(args) or 0), None
    except CommandLineError as exc:
        parser.subcommands[chosen].print_usage(sys.stderr)
        error, code = f"stormbench {chosen}: error: {exc}", EXIT_USAGE
    except UsageError as exc:
        error, code = f"stormbench {chosen}: error: {exc}", EXIT_USAGE
    except OSError as exc:  # the environment refused (a path, a permission, a full disk): say which, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        error, code = f"stormbench {chosen}: error: {where}{exc.strerror or exc} ({type(exc).__name__})", EXIT_USAGE
    except KeyboardInterrupt as exc:  # a command may say what it kept, as the exception's message
        detail = f": {exc}" if str(exc) else ""
        error, code = f"stormbench {chosen}: interrupted{detail}", EXIT_INTERRUPTED
    print(error, file=sys.stderr)
    return code, error


if __name__ == "__main__":
    # Run as `python -m commands.cli`: this module is __main__, so subcommands that raise
    # commands.cli.UsageError would raise a different class than ours; dispatch through it.
    from commands.cli import main as _main

    sys.exit(_main())
