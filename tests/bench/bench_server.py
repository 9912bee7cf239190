"""The chat server next to a bare `websockets` echo server, measured in the same run.

Both run as subprocesses on loopback; this process is the client. Printed as ratios
(chat / bare), so the numbers mean the same on any machine:
- handshake rate: connect, then the first server frame (welcome / the echo), CONCURRENCY at a time;
- memory per connection: the server process's RSS growth over CONNECTIONS open sockets;
- message round trip: one user_message -> assistant_message (echo agent) vs one echo.
"""
from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil
from websockets.asyncio.client import connect

from system.client.credentials import provision

HANDSHAKES = 600
CONCURRENCY = 20
CONNECTIONS = 500
ROUND_TRIPS = 500
ROUND_TRIP_TIMEOUT_S = 30.0  # a reply that never comes fails the benchmark instead of hanging it
BARE_SERVER = """
import asyncio
from websockets.asyncio.server import serve
async def echo(ws):
    async for message in ws:
        await ws.send(message)
async def main():
    async with serve(echo, "127.0.0.1", 0, compression=None, max_size=65536) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()
asyncio.run(main())
"""
CHAT_SERVER = "import sys; from commands.cli import main; sys.exit(main())"


def _start(args: list[str]) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    readable, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if readable else ""
    if not line:
        proc.kill()
        raise RuntimeError(f"server did not start: {args}")
    return proc, line


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class Target:
    """How to open a connection to one server and what its first frame is."""

    def __init__(self, name: str, proc: subprocess.Popen, url: str, hello: str | None, request: str):
        """`request` may hold {k}: each round trip its own message id (the chat server answers a
        message id it already stored with an ack alone, as it must for a client's resend)."""
        self.name, self.proc, self.url, self.hello, self.request = name, proc, url, hello, request
        self.opened = 0
        self.sent = 0

    async def open(self):
        """`url` may hold {n}: each connection its own conversation, so nothing fans out."""
        self.opened += 1
        ws = await connect(self.url.format(n=self.opened), compression=None, ping_interval=None, open_timeout=30)
        if self.hello is None:
            await ws.send("hello")
        await ws.recv()  # the welcome, or the echo
        return ws

    async def round_trip(self, ws) -> None:
        self.sent += 1
        await ws.send(self.request.replace("{k}", str(self.sent)))
        async with asyncio.timeout(ROUND_TRIP_TIMEOUT_S):
            while True:
                frame = await ws.recv()
                if self.hello is None:
                    return
                kind = json.loads(frame)["type"]
                if kind == "assistant_message":
                    return
                if kind == "error":
                    raise RuntimeError(f"{self.name}: the round trip got an error frame: {frame}")


async def handshake_rate(target: Target) -> float:
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def one():
        async with semaphore:
            ws = await target.open()
            await ws.close()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(HANDSHAKES)))
    return HANDSHAKES / (time.perf_counter() - started)


async def memory_per_connection(target: Target) -> float:
    process = psutil.Process(target.proc.pid)
    before = process.memory_info().rss
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def opened():
        async with semaphore:
            return await target.open()

    sockets = await asyncio.gather(*(opened() for _ in range(CONNECTIONS)))
    after = process.memory_info().rss
    rtt = await round_trip_time(target, sockets[0])
    await asyncio.gather(*(ws.close() for ws in sockets))
    return (after - before) / CONNECTIONS, rtt


async def round_trip_time(target: Target, ws) -> float:
    started = time.perf_counter()
    for _ in range(ROUND_TRIPS):
        await target.round_trip(ws)
    return (time.perf_counter() - started) / ROUND_TRIPS


async def measure(target: Target) -> dict:
    rate = await handshake_rate(target)
    per_conn, rtt = await memory_per_connection(target)
    return {"handshakes_per_s": rate, "bytes_per_connection": per_conn, "round_trip_s": rtt}


async def chat_target(db: Path) -> Target:
    proc, line = _start([sys.executable, "-c", CHAT_SERVER, "serve", "--db", str(db), "--admin-key", "bench",
                         "--log-file", os.devnull, "--heartbeat-interval", "20s", "--agent", "echo",
                         "--conversations-per-user", "off"])  # one user opens a conversation per socket
    ready = json.loads(line)
    async with aiohttp.ClientSession() as session:
        secrets = await provision(session, ready["http_url"], "bench", ["bench"])
        async with session.post(ready["http_url"] + "/auth/token", json={"user": "bench", "secret": secrets["bench"]}) as r:
            token = (await r.json())["access_token"]
    request = json.dumps({"v": "1.0", "type": "user_message", "id": "b{k}", "text": "hello"})
    return Target("chat", proc, f"{ready['ws_url']}/ws/chat/bench-{{n}}?token={token}", "welcome", request)


async def run() -> dict[str, dict]:
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        proc, line = _start([sys.executable, "-c", BARE_SERVER])
        try:
            results["bare"] = await measure(Target("bare", proc, f"ws://127.0.0.1:{int(line)}", None, "hello"))
        finally:
            _stop(proc)
        chat = await chat_target(Path(tmp) / "bench.db")
        try:
            results["chat"] = await measure(chat)
        finally:
            _stop(chat.proc)
    return results


def main() -> None:
    results = asyncio.run(run())
    bare, chat = results["bare"], results["chat"]
    print(f"{'':28}{'bare websockets':>18}{'stormbench serve':>18}{'ratio':>9}")
    rows = (("handshakes per second", "handshakes_per_s", 1, "{:.0f}"),
            ("memory per connection KiB", "bytes_per_connection", 1 / 1024, "{:.1f}"),
            ("round trip ms", "round_trip_s", 1000, "{:.2f}"))
    for label, key, scale, fmt in rows:
        ratio = chat[key] / bare[key] if bare[key] else float("nan")
        print(f"{label:28}{fmt.format(bare[key] * scale):>18}{fmt.format(chat[key] * scale):>18}{ratio:>8.2f}x")
    print(f"({HANDSHAKES} handshakes at concurrency {CONCURRENCY}; {CONNECTIONS} open connections; "
          f"{ROUND_TRIPS} round trips; the chat round trip includes typing, the agent thread and a SQLite append)")


if __name__ == "__main__":
    main()
