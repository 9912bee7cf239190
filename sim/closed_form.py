"""Textbook answers the model must reproduce: the yardsticks of its own tests.

Each function is the exact result for a setting simple enough to solve on paper; the tests
drive the model into that setting and compare. A model that agrees here can be trusted on the
settings that have no closed form.
"""
from __future__ import annotations

import math


def capped_exponential_quantile(rate: float, cap: float, q: float) -> float:
    """q-quantile of min(Exp(rate), cap): a connection dropped at `rate` or closed at token expiry."""
    if not 0 < q < 1:
        raise ValueError(f"q: expected 0 < q < 1, got {q}")
    return min(-math.log1p(-q) / rate, cap)


def capped_exponential_mean(rate: float, cap: float) -> float:
    """E[min(Exp(rate), cap)] = (1 - e^(-rate*cap)) / rate."""
    return -math.expm1(-rate * cap) / rate


def erlang_c(servers: int, arrival_rate: float, service_rate: float) -> float:
    """Probability that an arrival waits in an M/M/c queue (Erlang's C formula)."""
    a = arrival_rate / service_rate  # offered load in Erlangs
    rho = a / servers
    if rho >= 1:
        return 1.0
    # Erlang B by its stable recursion, then C from B.
    b = 1.0
    for k in range(1, servers + 1):
        b = a * b / (k + a * b)
    return b / (1 - rho * (1 - b))


def mmc_mean_wait(servers: int, arrival_rate: float, service_rate: float) -> float:
    """Mean time in queue (before service) of an M/M/c queue; inf when overloaded."""
    if arrival_rate >= servers * service_rate:
        return math.inf
    return erlang_c(servers, arrival_rate, service_rate) / (servers * service_rate - arrival_rate)


def herd_arrival_rate(clients: int, window: float) -> float:
    """Mean reconnect rate when `clients` each wait U(0, window) after one restart: N / W."""
    return clients / window


def fifo_timeouts(arrivals: list[float], rate: float, timeout: float) -> list[int]:
    """Which arrivals (their indices) of one FIFO server with service time exactly 1/rate wait
    longer than `timeout` for their answer (queueing plus service): d_k = max(t_k, d_{k-1}) + 1/rate.
    The server serves every arrival, also one whose client has given up (the request is already
    in its buffer), so giving up does not shorten the queue behind it."""
    done, late = 0.0, []
    for i in sorted(range(len(arrivals)), key=arrivals.__getitem__):
        done = max(arrivals[i], done) + 1.0 / rate
        if done - arrivals[i] > timeout:
            late.append(i)
    return late


def herd_peak_band(clients: int, bins: int, level: float = 0.95, runs: int = 4000, seed: int = 0
                   ) -> tuple[float, float]:
    """The central `level` interval of the highest of `bins` equal bins' counts when `clients`
    independent uniform draws fall into them (a full-jitter herd's 1-s maximum over its window).

    The counts are multinomial(clients, 1/bins each); their maximum has no handy closed form, so
    this draws it `runs` times (numpy's multinomial sampler, seeded) and returns the quantiles:
    with the default 4,000 runs a quantile's own error is about a count or two at 100,000 clients."""
    import numpy as np

    counts = np.random.default_rng(seed).multinomial(clients, np.full(bins, 1.0 / bins), size=runs)
    peaks = counts.max(axis=1)
    tail = (1.0 - level) / 2
    low, high = np.quantile(peaks, [tail, 1.0 - tail])
    return float(low), float(high)
