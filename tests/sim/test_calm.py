"""The model's calm path (`sim.client.SimClient.wake`) against the plain model.

A calm client rests without timers and its refreshes are played in a batch when something
happens to it. The batch skips one thing only: a refresh then does not queue on the server's
CPU behind other requests. So on the same scenario and seed both models make the very same
records (same clients, kinds and sockets, in the same order) at times that differ by at most a
few queueing delays, and issue the same tokens.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from formats.scenario import from_dict
from sim.calibration import load
from sim.world import ModelOptions, World

TOLERANCE_S = 0.05  # a few handshake-queue waits (about 1 ms each at this load)


def day(clients: int, **faults):
    return from_dict({
        "name": "calm-check", "seed": 3, "duration": "8h",
        "system": {"behaviour": "fixed", "token_ttl": "15m", "live_expiry": True,
                   "admission": {"max_connections": 10 * clients, "handshake_rate": "500/s"}},
        "fleet": {"clients": clients, "profile": "fixed", "arrival": {"ramp": "5m"}, "messages": {"every": "20m"},
                  "network": {"drops": {"every": "2h"}, "offline": {"every": "4h", "for": "1m"}}},
        "faults": [{"at": "1h", "kind": "server_restart"},
                   {"at": "2h", "for": "10m", "kind": "latency", "latency": "800ms", "jitter": "200ms"},
                   {"at": "3h", "for": "5m", "kind": "auth_outage"},
                   {"at": "4h", "kind": "token_expiry", "fraction": 0.5},
                   {"at": "5h", "for": "2m", "kind": "partition", "fraction": 0.3},
                   {"at": "6h", "for": "3m", "kind": "ws_drop_pings", "fraction": 0.2}],
    })


def run(sc, calm: bool) -> World:
    world = World(sc, load()[0], options=ModelOptions(message_clients=40, calm_batches=calm))
    world.run()
    return world


@pytest.fixture(scope="module")
def both():
    sc = day(400)
    return run(sc, False), run(sc, True)


def keyed(world: World) -> list[tuple]:
    rows = [(r["client"], r["kind"], r.get("sock"), r.get("code"), r.get("ok"), r["t"]) for r in world.records]
    rows.sort(key=lambda r: (r[0], r[5]))
    return rows


def test_calm_batches_make_the_plain_models_records(both):
    plain, calm = both
    a, b = keyed(plain), keyed(calm)
    assert len(a) > 50_000
    assert [r[:5] for r in a] == [r[:5] for r in b]
    gaps = np.abs(np.array([r[5] for r in a]) - np.array([r[5] for r in b]))
    assert gaps.max() <= TOLERANCE_S
    assert calm.tokens.issued == plain.tokens.issued
    assert calm.policy_events == plain.policy_events


def test_calm_batches_save_most_of_the_timers(both):
    """What the batch is for: a calm client costs no timer per refresh. Even on this busy day
    (a drop every 2 h, six faults in 8 h) that is over 30% of the plain model's scheduled events."""
    plain, calm = both
    assert next(calm.env._eid) < 0.7 * next(plain.env._eid)


def test_a_reconnect_leaves_one_refresh_chain():
    """A refresh timer still pending when a socket closes is replaced by the reconnect's token:
    its stale firing must not match the timer armed after the next refresh (it did when timer
    generations restarted after each firing, and each reconnect added a refresh chain). So two
    successful refreshes on one open connection are at least 40% of the 15-min token's life
    apart (`ClientConfig.refresh_at - refresh_jitter`)."""
    sc = day(60)
    for calm in (False, True):
        world = run(sc, calm)
        last: dict[str, float | None] = {}
        gaps = []
        for r in sorted(world.records, key=lambda r: r["t"]):
            c, kind = r["client"], r["kind"]
            if kind == "open":
                last[c] = r["t"]  # (the token it opened with is at most one answer time older)
            elif kind == "token" and r.get("ok") and last.get(c) is not None:
                gaps.append(r["t"] - last[c])
                last[c] = r["t"]
            elif kind != "token":
                last[c] = None
        assert len(gaps) > 60 * 8 * 3600 / 900
        assert min(gaps) >= 0.4 * 900 - 1.0, calm
