"""Measure the system's processing time before the fleet starts.

Compression shrinks every time constant but not the time the server takes to
answer a handshake or the agent to reply; the engine compares these with the
scaled constants (`TimeScale.distortion_warnings`). The probe is a real client:
a token over HTTP, then a few WebSocket handshakes and one user message through
the same proxies the fleet uses.
"""
from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

import aiohttp
from websockets.asyncio.client import connect

from harness.emulate.topology import Endpoints


USER = "probe"  # the probe's own user (the engine provisions it)


async def measure(endpoints: Endpoints, secret: str, *, samples: int = 5, timeout: float = 10.0,
                  user: str = USER) -> dict[str, Any]:
    """Median wall seconds of a WebSocket handshake (connect → welcome) and of an agent
    reply (user_message → assistant_message); None for what could not be measured."""
    out: dict[str, Any] = {"handshake_s": None, "agent_reply_s": None, "errors": []}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
            async with http.post(f"{endpoints.http_url}/auth/token", json={"user": user, "secret": secret}) as r:
                r.raise_for_status()
                token = (await r.json())["access_token"]
        url = f"{endpoints.ws_url}/ws/chat/{user}-probe?token={token}"
        handshakes = []
        for _ in range(samples):
            t = time.perf_counter()
            async with connect(url, open_timeout=timeout, close_timeout=1) as ws:
                await _until(ws, "welcome", timeout)
                handshakes.append(time.perf_counter() - t)
        out["handshake_s"] = statistics.median(handshakes)
        async with connect(url, open_timeout=timeout, close_timeout=1) as ws:
            await _until(ws, "welcome", timeout)
            t = time.perf_counter()
            await ws.send(json.dumps({"v": "1.0", "type": "user_message", "id": "probe-1",
                                      "text": "2 bedroom apartment in Lisbon under 1500 per month"}))
            await _until(ws, "assistant_message", timeout)
            out["agent_reply_s"] = time.perf_counter() - t
    except Exception as exc:  # a probe failure is a warning; the run itself will show the cause
        out["errors"].append(f"{type(exc).__name__}: {exc}")
    return out


async def _until(ws: Any, frame_type: str, timeout: float) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("type") == frame_type:
                return frame
