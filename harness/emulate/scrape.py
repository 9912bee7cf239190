"""Periodic `/metrics` scrapes of the server, parsed with prometheus_client's own parser.

Each scrape becomes one `scrapes.jsonl` line `{"t", "samples": [{"name","labels","value"}]}`
with `t` in scenario seconds, so gates on server metrics (agent latency, closes by
code) read the same numbers Prometheus would have.
"""
from __future__ import annotations

import asyncio
import math
from typing import Any, Callable

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from formats.record import RecordWriter


def parse_metrics(text: str) -> list[dict[str, Any]]:
    """Every sample of a Prometheus text exposition as plain dicts (NaN/inf kept as strings
    so the line stays valid JSON)."""
    out = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            v = float(s.value)
            out.append({"name": s.name, "labels": dict(s.labels),
                        "value": v if math.isfinite(v) else str(v)})
    return out


async def scrape_until(http: aiohttp.ClientSession, url: Callable[[], str], writer: RecordWriter,
                       clock: Callable[[], float], every: float, going: Callable[[], bool], stop: asyncio.Event,
                       add: Callable[[list[dict]], list[dict]] = lambda samples: samples) -> None:
    """Scrape `url()` (the server's /metrics) every `every` seconds of the loop's clock while
    `going()` and until `stop`, stamping each scrape with `clock()` (scenario seconds); `add`
    completes a scrape (e.g. with the process's memory). A failed scrape is left out: the server
    was restarting, and a gap in the scrapes is the truth."""
    while not stop.is_set() and going():
        try:
            async with http.get(url()) as r:
                text = await r.text()
            writer.scrape(round(clock(), 3), add(parse_metrics(text)))
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            pass
        try:
            await asyncio.wait_for(stop.wait(), every)
        except asyncio.TimeoutError:
            pass
