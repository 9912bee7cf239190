"""A 30-minute soak (slow; `STORMBENCH_SOAK_S` shortens it): chatty clients, reconnects with
resume, invalid frames, token refreshes and clients that stop reading, in rounds, against one
server. Its RSS after the warm-up must not grow by 5% or more."""
from __future__ import annotations

import asyncio
import json
import os
import time

import aiohttp
import psutil
import pytest

from tests.server.conftest import Api, recv_json, recv_until
from tests.server.rawclient import DeafClient

SOAK_S = float(os.environ.get("STORMBENCH_SOAK_S", 1800))
WARMUP_SHARE = 0.2
CONVERSATIONS = 40  # reused round after round: state per conversation is bounded


@pytest.mark.slow
@pytest.mark.timeout(SOAK_S + 600)
async def test_soak_under_hostile_clients_keeps_rss_flat(spawn_serve):
    serve = spawn_serve("--admin-key", "k", "--send-timeout", "2s", "--heartbeat-interval", "2s",
                        "--heartbeat-timeout", "2s", "--max-invalid-frames", "1000", "--auth-user-rate", "off")
    process = psutil.Process(serve.proc.pid)
    samples: list[tuple[float, int]] = []
    async with aiohttp.ClientSession() as http:
        api = Api(serve.http_url, serve.ws_url, http, "k")
        users = [f"u{i}" for i in range(CONVERSATIONS)]
        tokens = {u: (await api.token(u)) for u in users}

        async def visit(n: int) -> None:
            user = users[n % CONVERSATIONS]
            pair = tokens[user]
            status, fresh = await api.post("/auth/refresh", {"refresh_token": pair["refresh_token"]})
            assert status == 200, fresh
            tokens[user] = fresh
            async with api.connect(f"conv-{user}", fresh["access_token"]) as ws:
                await recv_json(ws)
                await ws.send(json.dumps({"v": "1.0", "type": "resume", "id": f"r{n}", "last_seq": max(0, n - 5)}))
                await ws.send(json.dumps({"v": "1.0", "type": "user_message", "id": f"m{n}", "text": "hi " * 50}))
                await recv_until(ws, "ack")
                await recv_until(ws, "assistant_message")
                await ws.send("not json")
                await recv_until(ws, "error")

        async def deaf(n: int) -> None:
            user = users[n % CONVERSATIONS]
            client = await asyncio.to_thread(DeafClient, serve.ws_url, f"/ws/chat/conv-{user}?token={tokens[user]['access_token']}")
            for i in range(5):
                await asyncio.to_thread(client.send, {"v": "1.0", "type": "resume", "id": f"d{i}", "last_seq": 0})
            await asyncio.sleep(0.5)
            client.close()

        started, n = time.monotonic(), 0
        while time.monotonic() - started < SOAK_S:
            await asyncio.gather(*(visit(n + i) for i in range(20)), deaf(n))
            n += 20
            samples.append((time.monotonic() - started, process.memory_info().rss))
            await asyncio.sleep(1.0)
        stats = await api.stats()
    assert stats["connections_opened"] >= n
    after_warmup = [rss for t, rss in samples if t >= SOAK_S * WARMUP_SHARE]
    growth = (after_warmup[-1] - after_warmup[0]) / after_warmup[0]
    shown = [(round(t), rss // 1024) for t, rss in samples[:: max(1, len(samples) // 20)]]
    print(f"soak {SOAK_S:g}s, {n} visits: RSS after warm-up {after_warmup[0] // 1024} KiB -> "
          f"{after_warmup[-1] // 1024} KiB ({growth:+.1%}); samples (s, KiB): {shown}")
    assert growth < 0.05, shown
