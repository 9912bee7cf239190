"""What a Prometheus scrape of the modelled server would read, written to `scrapes.jsonl`.

Gates on server metrics (`agent_execution` p95, active connections) then judge a simulated run
the same way as an emulated one, from the same histogram and gauge samples. Only what the model
actually models is scraped: there is no `process_resident_memory_bytes`, so a memory gate on a
simulated run stays `unknown` rather than passing on invented numbers.
"""
from __future__ import annotations

import bisect
from typing import Any, Callable

from system.server.metrics import AGENT_SECONDS_BUCKETS

AGENT = "real_estate"
SCRAPES_PER_RUN = 120


class AgentHistogram:
    """agent_execution_seconds as prometheus-client keeps it: cumulative buckets, sum and count."""

    def __init__(self) -> None:
        self.counts = [0] * (len(AGENT_SECONDS_BUCKETS) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(AGENT_SECONDS_BUCKETS, seconds)] += 1
        self.sum += seconds
        self.count += 1

    def samples(self, scale: float) -> list[dict[str, Any]]:
        out, running = [], 0
        for le, n in zip([*map(str, AGENT_SECONDS_BUCKETS), "+Inf"], self.counts):
            running += n
            out.append({"name": "agent_execution_seconds_bucket", "labels": {"agent": AGENT, "le": le},
                        "value": running * scale})
        out.append({"name": "agent_execution_seconds_sum", "labels": {"agent": AGENT}, "value": self.sum * scale})
        out.append({"name": "agent_execution_seconds_count", "labels": {"agent": AGENT}, "value": self.count * scale})
        out.append({"name": "agent_requests_total", "labels": {"agent": AGENT, "tenure": "", "outcome": "ok"},
                    "value": self.count * scale})
        out.append({"name": "agent_errors_total", "labels": {"agent": AGENT}, "value": 0.0})
        return out


def every(env, duration: float, sample: Callable[[float], None]) -> None:
    """Call `sample(now)` SCRAPES_PER_RUN times, evenly over the run (the last at its end)."""

    step = duration / SCRAPES_PER_RUN
    for k in range(1, SCRAPES_PER_RUN + 1):
        env.call_in(k * step - 1e-9, lambda: sample(env.now))
