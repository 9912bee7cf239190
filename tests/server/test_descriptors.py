"""Descriptor limits: a connection flood past the open-files limit is shed with 1013, every
connect of it (none reset: past the ceiling the server stops accepting until descriptors free up),
and the HTTP side (/healthz, /metrics) keeps answering; the server raises its soft limit at start."""
from __future__ import annotations

import asyncio
import resource
import time
from collections import Counter

import aiohttp
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, InvalidMessage, InvalidStatus

from system.server.fdlimit import default_max_connections
from tests.server.conftest import Api

LIMIT = 256  # the server's hard (and soft) open-files limit
FLOOD = 420
ANSWER_WITHIN = 5.0  # s: a stalled listener never answers; a busy shared machine may take a few seconds
# s a flood connect may wait for its handshake: past the ceiling each waits for descriptors that
# shed connections free, one close at a time, which on a busy 2-core machine took over 20 s for a
# few of 420; a listener that never accepts again still times out
OPEN_WITHIN = 60.0


def _limit_descriptors(soft: int, hard: int):
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return preexec


async def _hold(url: str, held: list, results: list) -> None:
    """Open a connection and keep it; record how it ended up."""
    try:
        ws = await connect(url, open_timeout=OPEN_WITHIN, close_timeout=2, ping_interval=None)
    except (InvalidStatus, InvalidHandshake, InvalidMessage, OSError, TimeoutError) as exc:
        results.append(type(exc).__name__)
        return
    try:
        frame = await asyncio.wait_for(ws.recv(), OPEN_WITHIN)
        results.append("welcome" if '"welcome"' in frame else "error")
        held.append(ws)
    except Exception:
        await ws.wait_closed()
        results.append(ws.close_code)


async def test_a_flood_past_the_descriptor_limit_is_shed_and_health_answers(spawn_serve, tmp_path):
    serve = spawn_serve("--admin-key", "k", "--heartbeat-interval", "off",
                        preexec_fn=_limit_descriptors(LIMIT // 2, LIMIT))
    cap = default_max_connections(LIMIT)  # the soft limit was raised to the hard one
    # a new TCP connection per request: the HTTP listener itself must still accept during the flood
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=ANSWER_WITHIN),
                                     connector=aiohttp.TCPConnector(force_close=True)) as http:
        api = Api(serve.http_url, serve.ws_url, http, "k")
        stats = await api.stats()
        assert stats["max_connections"] == cap
        token = (await api.token("flood"))["access_token"]
        held, results = [], []
        url = f"{serve.ws_url}/ws/chat/flood-conv?token={token}"
        flood = [asyncio.create_task(_hold(url, held, results)) for _ in range(FLOOD)]
        slowest = 0.0
        while not all(t.done() for t in flood):  # health and metrics answer all through the flood
            for path, expect in (("/healthz", '"ok"'), ("/metrics", "ws_connections_active")):
                started = time.monotonic()
                async with http.get(serve.http_url + path) as r:  # each within the session's timeout
                    assert r.status == 200 and expect in await r.text()
                slowest = max(slowest, time.monotonic() - started)
            await asyncio.sleep(0.05)
        assert results.count("welcome") == cap, Counter(map(str, results))
        assert results.count(1013) == FLOOD - cap, Counter(map(str, results))  # no reset, no timeout
        assert slowest < ANSWER_WITHIN, slowest
        stats = await api.stats()
        assert stats["connections_active"] == cap
        assert stats["accept_pauses"] > 0  # the flood reached the ceiling: accepting paused, and resumed
        await asyncio.gather(*(ws.close() for ws in held))
    serve.proc.terminate()
    serve.proc.wait(10)
    log = serve.log_path.read_text() + serve.proc.stderr.read()
    assert "Traceback" not in log and "EMFILE" not in log and "Too many open files" not in log
