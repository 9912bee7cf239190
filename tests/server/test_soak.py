"""Connection churn must not grow the server: a leak shows up as RSS that keeps climbing."""
from __future__ import annotations

import asyncio
import json

import aiohttp
import psutil
import pytest

from tests.server.conftest import Api, recv_json, recv_until

ROUNDS, PER_ROUND, WARMUP = 8, 300, 3


@pytest.mark.slow
async def test_connection_churn_does_not_leak(spawn_serve):
    serve = spawn_serve("--admin-key", "k", "--max-invalid-frames", "1000")
    process = psutil.Process(serve.proc.pid)
    rss = []
    async with aiohttp.ClientSession() as session:
        api = Api(serve.http_url, serve.ws_url, session, "k")
        token = (await api.token())["access_token"]

        async def visit(i: int) -> None:
            async with api.connect(f"c{i % 50}", token) as ws:
                await recv_json(ws)
                await ws.send(json.dumps({"v": "1.0", "type": "user_message", "id": f"m{i}", "text": "hi"}))
                await recv_until(ws, "assistant_message")
                await ws.send("not json")
                await recv_until(ws, "error")

        for round_ in range(ROUNDS):  # message ids unique over the rounds: the server drops a resent id
            for start in range(round_ * PER_ROUND, (round_ + 1) * PER_ROUND, 25):
                await asyncio.gather(*(visit(i) for i in range(start, start + 25)))
            rss.append(process.memory_info().rss)
        stats = await api.stats()
    assert stats["connections_active"] == 0 and stats["connections_opened"] == ROUNDS * PER_ROUND
    # warm-up fills SQLite's page cache (2 MiB) and the allocator's arenas; after it, a leaked
    # session (~20 KiB with its socket) would add ~6 MiB per round
    growth = rss[-1] - rss[WARMUP]
    assert growth < 3 * 1024 * 1024, [r // 1024 for r in rss]
