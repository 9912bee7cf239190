"""Named random streams from a run's one seed: a leaf the draws and the run-record readers share.

A stream is named for what it draws (`"arrivals"`, `"client:17"`), so adding a new stream never
shifts the draws of an existing one. The gates read the arrival ramp from a run record's seed
(`ramp_arrivals`) without the scenario package, which itself imports the gates.
"""
from __future__ import annotations

import hashlib
import random

import numpy as np


def stream(seed: int, name: str) -> random.Random:
    """An independent `random.Random` for one named purpose; str seeds hash with SHA-512 (stable)."""
    return random.Random(f"{seed}:{name}")


def numpy_stream(seed: int, name: str) -> np.random.Generator:
    """The numpy counterpart of `stream`, for vectorised draws at fleet scale."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return np.random.default_rng(np.random.SeedSequence([int.from_bytes(digest[i:i + 4], "little")
                                                         for i in range(0, 16, 4)]))


def ramp_arrivals(seed: int, ramp: float, clients: int) -> list[float]:
    """`arrival_times` from the three numbers it depends on: a run record's gates ask it which
    clients should be connected by a given second without rebuilding the `Scenario`."""
    if ramp <= 0:
        return [0.0] * clients
    rng = stream(seed, "arrivals")
    return [rng.uniform(0.0, ramp) for _ in range(clients)]
