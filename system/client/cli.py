"""`stormbench client`: run reference clients against any server that speaks the contract.

An engineer reproduces a bug with it (`--profile legacy`), then flips one fix at a
time (`--fix NAME`, `--no-fix NAME`) to see what it buys. Live summary on a terminal;
`--events FILE` keeps every client record as JSON lines.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from contextlib import ExitStack
from pathlib import Path

from system.client.config import FIX_NAMES, JITTER_MODES, PROFILES, ClientConfig, Fixes
from system.errors import UsageError
from system.units import duration_arg, optional_duration_arg, positive_int_arg

HELP = "run reference clients (legacy/fixed policy) against a server"


def configure(parser: argparse.ArgumentParser) -> None:
    d = ClientConfig()
    target = parser.add_argument_group("target")
    target.add_argument("--ws-url", required=True, help="the server's WebSocket base URL, e.g. ws://127.0.0.1:8765")
    target.add_argument("--http-url", required=True, help="the server's HTTP base URL (auth), e.g. http://127.0.0.1:8080")
    target.add_argument("--admin-key", default=os.environ.get("STORMBENCH_ADMIN_KEY"),
                        help="the server's X-Admin-Key, to create the clients' users and secrets "
                             "(default: $STORMBENCH_ADMIN_KEY)")

    who = parser.add_argument_group("which client")
    who.add_argument("--profile", choices=PROFILES, default="fixed", help="all fixes on (fixed, default) or off (legacy)")
    who.add_argument("--fix", action="append", default=[], choices=FIX_NAMES, metavar="NAME",
                     help=f"turn one fix on over the profile (repeatable): {', '.join(FIX_NAMES)}")
    who.add_argument("--no-fix", action="append", default=[], choices=FIX_NAMES, metavar="NAME",
                     help="turn one fix off over the profile (repeatable)")
    who.add_argument("--jitter", choices=JITTER_MODES, default=d.jitter, help=f"jitter law when the jitter fix is on (default {d.jitter})")

    fleet = parser.add_argument_group("fleet")
    fleet.add_argument("--clients", type=positive_int_arg, default=1, help="how many clients (default 1)")
    fleet.add_argument("--duration", type=duration_arg, default=60.0, help="how long to run, e.g. 60s or 10m (default 60s)")
    fleet.add_argument("--ramp", type=duration_arg, default=0.0, help="spread client starts over this long (default 0)")
    fleet.add_argument("--message-every", type=optional_duration_arg, default=10.0,
                       help="mean gap between a client's user messages; 'off' for none (default 10s)")
    fleet.add_argument("--seed", type=int, default=0, help="seeds every client's jitter and chatter (default 0)")
    fleet.add_argument("--events", type=Path, default=None, help="write every client record as JSON lines to FILE")
    fleet.add_argument("--quiet", action="store_true", help="no live view; print only the final summary")

    times = parser.add_argument_group("client time constants")
    for name, help_text in (
        ("base_delay", "first backoff delay"), ("max_delay", "backoff cap"),
        ("legacy_delay", "the legacy client's fixed retry delay"),
        ("restart_window", "reconnect spread after a 1012 (service restart)"),
        ("overload_base", "extra wait after a 1013 (try again later)"),
        ("token_ttl", "assumed token lifetime when the server does not say"),
        ("refresh_lead", "legacy: refresh this long before the token expires"),
        ("stable_after", "a connection this old resets the attempt counter"),
        ("think_time", "how long a user takes to hard-refresh after a give-up"),
        ("reorder_hold", "longest wait for a missing earlier message before showing a later one"),
    ):
        times.add_argument(f"--{name.replace('_', '-')}", dest=name, type=duration_arg, default=getattr(d, name),
                           help=f"{help_text} (default {getattr(d, name):g}s)")
    times.add_argument("--refresh-at", type=float, default=d.refresh_at, metavar="FRACTION",
                       help=f"fixed: refresh once this fraction of the token's lifetime has passed "
                            f"(default {d.refresh_at:g}, half-life)")
    times.add_argument("--refresh-jitter", type=float, default=d.refresh_jitter, metavar="FRACTION",
                       help=f"fixed, with the jitter fix: refresh up to this fraction of the lifetime earlier, "
                            f"drawn per token (default {d.refresh_jitter:g})")
    times.add_argument("--max-retries", type=positive_int_arg, default=d.max_retries,
                       help=f"legacy: consecutive failures before giving up (default {d.max_retries})")
    times.add_argument("--ping-interval", type=optional_duration_arg, default=20.0,
                       help="WebSocket keepalive ping interval; 'off' disables (default 20s)")


def config_from_args(args: argparse.Namespace) -> ClientConfig:
    fixes = Fixes.profile(args.profile).with_changes(enable=args.fix, disable=args.no_fix)
    return ClientConfig(
        fixes=fixes, jitter=args.jitter, base_delay=args.base_delay, max_delay=args.max_delay,
        legacy_delay=args.legacy_delay, max_retries=args.max_retries, restart_window=args.restart_window,
        overload_base=args.overload_base, token_ttl=args.token_ttl, refresh_lead=args.refresh_lead,
        stable_after=args.stable_after, think_time=args.think_time, reorder_hold=args.reorder_hold,
        refresh_at=args.refresh_at, refresh_jitter=args.refresh_jitter)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.live import Live

    from system.client.credentials import ProvisionError
    from system.client.driver import DriverOptions, Endpoints
    from system.client.fleet import FleetSpec, run_fleet
    from system.client.summary import Summary

    for flag, url, schemes in (("--ws-url", args.ws_url, ("ws://", "wss://")),
                               ("--http-url", args.http_url, ("http://", "https://"))):
        if not url.startswith(schemes):
            raise UsageError(f"{flag} {url!r}: expected a URL starting with {' or '.join(schemes)}")
    try:
        config = config_from_args(args)
        spec = FleetSpec(clients=args.clients, config=config, duration=args.duration, seed=args.seed,
                         message_every=args.message_every, ramp=args.ramp)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    options = DriverOptions(ping_interval=args.ping_interval, ping_timeout=args.ping_interval)
    summary = Summary()
    console = Console(stderr=True)
    title = f"stormbench client: {args.clients} x {config.fixes.label()} for {args.duration:g}s"

    with ExitStack() as stack:
        events = None
        if args.events is not None:
            try:
                events = stack.enter_context(open(args.events, "w", buffering=1 << 16))
            except OSError as exc:
                raise UsageError(f"--events {args.events}: cannot write ({exc.strerror})") from None

        def on_record(record: dict) -> None:
            summary.add(record)
            if events is not None:
                events.write(json.dumps(record, separators=(",", ":")) + "\n")

        async def main() -> None:
            run_task = asyncio.ensure_future(run_fleet(spec, Endpoints(args.ws_url, args.http_url), args.admin_key,
                                                       on_record=on_record, options=options))
            if args.quiet or not console.is_terminal:
                await run_task
                return
            with Live(summary.table(title), console=console, refresh_per_second=4, transient=True) as live:
                while not run_task.done():
                    await asyncio.wait([run_task], timeout=0.5)
                    live.update(summary.table(title))
            await run_task

        if not args.admin_key:
            raise UsageError("--admin-key (or $STORMBENCH_ADMIN_KEY): expected the server's admin key, "
                             "which creates the clients' users (a token needs a user's secret)")
        try:
            asyncio.run(main())
        except ProvisionError as exc:
            raise UsageError(f"--admin-key: {exc}") from None
    Console().print(summary.table(title))
    if args.events is not None:
        print(f"events: {args.events}", file=sys.stderr)
    return 0
