"""`stormbench proxy`: the fault proxy's process (flags like `toxiproxy-server`).

Prints exactly one line on stdout once the API listens,
`{"event": "ready", "api_url": "http://127.0.0.1:PORT"}`, so a parent started
with `--port 0` learns the port without polling; logs go to stderr. Stops on
SIGTERM or SIGINT, dropping every proxied connection.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
from pathlib import Path
from typing import Any

from aiohttp import web

from system.errors import UsageError
from harness.proxy.api import make_app, validate_populate
from harness.proxy.errors import ApiError
from harness.proxy.proxy import PopulateError, ProxyCollection
from system.units import positive_int_arg

HELP = "run the Toxiproxy-compatible fault proxy (HTTP API + TCP/WebSocket toxics)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address of the HTTP API (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8474, help="port of the HTTP API; 0 picks a free one (default: 8474)")
    parser.add_argument(
        "--config",
        type=Path,
        help="JSON array of proxies to create before the ready line, as for POST /populate; "
        "each entry may also carry a `toxics` array of toxic objects (a stormbench extension)",
    )
    parser.add_argument("--seed", type=int, help="seed for every toxicity and jitter draw (default: random)")
    parser.add_argument("--max-connections-per-proxy", type=positive_int_arg, default=None, metavar="N",
                        help="connections one proxy holds at once; beyond, a new client is reset (default: half "
                             "the open-files limit less a reserve, as each costs two descriptors)")


FD_RESERVE = 256  # descriptors kept back for the API, its clients and the splice threads' pipes


def raise_open_files_limit() -> int:
    """Thousands of proxied connections need two descriptors each: take the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def load_config(path: Path) -> tuple[list[dict[str, Any]], list[list[Any]]]:
    """Proxies to populate and, per proxy, the toxics to add; errors name the file and entry."""
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise UsageError(f"{path}: cannot read config: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not valid JSON: {exc}") from None
    try:
        entries = validate_populate(raw)
    except ApiError as exc:
        raise UsageError(f"{path}: {exc.message} (expected an array of {{name, listen, upstream, enabled?, toxics?}})") from None
    toxics = []
    for i, item in enumerate(raw, start=1):
        listed = item.get("toxics") or []
        if not isinstance(listed, list):
            raise UsageError(f"{path}: proxy {i} ({item.get('name')}): `toxics` must be an array of toxic objects")
        toxics.append(listed)
    return entries, toxics


async def apply_config(coll: ProxyCollection, path: Path, entries: list[dict[str, Any]], toxics: list[list[Any]]) -> None:
    try:
        proxies = await coll.populate(entries)
    except PopulateError as exc:
        raise UsageError(f"{path}: proxy {len(exc.done) + 1} ({entries[len(exc.done)]['name']}): {exc.error.message}") from None
    for i, (proxy, listed) in enumerate(zip(proxies, toxics), start=1):
        for j, body in enumerate(listed, start=1):
            try:
                if not isinstance(body, dict):
                    raise ApiError(400, "a toxic must be a JSON object")
                proxy.add_toxic(coll.new_toxic(proxy, body))
            except ApiError as exc:
                raise UsageError(f"{path}: proxy {i} ({proxy.name}) toxic {j}: {exc.message}") from None


async def serve(args: argparse.Namespace, seed: int, max_connections: int) -> None:
    config = load_config(args.config) if args.config else None
    coll = ProxyCollection(seed, max_connections=max_connections)
    runner = web.AppRunner(make_app(coll), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, args.host, args.port)
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise UsageError(f"--host/--port: cannot listen on {args.host}:{args.port}: {os.strerror(exc.errno) if exc.errno else exc}") from None
    host, port = runner.addresses[0][:2]
    coll.api_address = (host, port)  # before the config: no proxy may point at the API
    if config:
        try:
            await apply_config(coll, args.config, *config)
        except UsageError:
            await runner.cleanup()
            raise
    shown = f"[{host}]" if ":" in host else host
    print(json.dumps({"event": "ready", "api_url": f"http://{shown}:{port}"}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for proxy in coll.proxies.values():
            proxy.stop()
        await runner.cleanup()


def run(args: argparse.Namespace) -> int:
    limit = raise_open_files_limit()
    max_connections = args.max_connections_per_proxy or max(1, (limit - FD_RESERVE) // 2)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(8), "big")
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # optional: the stdlib loop works, only slower
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(args, seed, max_connections))
    return 0
