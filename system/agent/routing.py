"""Choosing the agent for a message: the highest routing score wins if it clears the bar.

Pure: it sees the agents' readings and returns a decision; logging and counting
happen in the supervisor.
"""
from __future__ import annotations

from dataclasses import dataclass

from .registry import Reading

THRESHOLD = 0.5


@dataclass(frozen=True)
class Route:
    agent: str
    score: float
    reason: str


def choose(readings: dict[str, Reading], fallback: str, threshold: float = THRESHOLD) -> Route:
    """`readings` in routing order (ties go to the first); below `threshold` the fallback answers."""
    best_name, best = None, None
    for name, reading in readings.items():
        if name != fallback and (best is None or reading.score > best.score):
            best_name, best = name, reading
    if best is None or best.score < threshold:
        return Route(fallback, best.score if best else 0.0, "below threshold" if best else "no agents")
    return Route(best_name, best.score, best.reason)
