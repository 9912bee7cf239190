"""The seeded plan: same seed → same draws; fractions, groups and timelines as stated."""
from __future__ import annotations

from collections import Counter

import pytest

from harness.emulate.plan import FaultSpec, make_plan, pick, poisson_times, stream, timeline

FAULTS = [
    FaultSpec(at=600, kind="partition", duration=120, fraction=0.3),
    FaultSpec(at=100, kind="server_restart", params={"mode": "graceful"}),
    FaultSpec(at=900, kind="load_spike", duration=60, params={"clients": 7}),
    FaultSpec(at=300, kind="token_expiry", fraction=0.5),
]


def plan(seed: int, clients: int = 50):
    return make_plan(seed=seed, clients=clients, duration=1200, groups=10, ramp=60,
                     drops_every=300, offline_every=600, offline_for=30, faults=FAULTS)


def test_same_seed_same_plan_and_different_seed_differs():
    assert plan(7).fingerprint() == plan(7).fingerprint()
    assert plan(7).fingerprint() != plan(8).fingerprint()


def test_fraction_of_groups_and_client_split():
    p = plan(3)
    part = next(f for f in p.faults if f.kind == "partition")
    assert len(part.targets) == 3 and len(set(part.targets)) == 3
    sizes = Counter(c.group for c in p.clients if not c.spike)
    assert set(sizes.values()) == {5}  # 50 clients round-robin over 10 groups


def test_adding_clients_does_not_shift_existing_draws():
    small, big = plan(11, clients=50), plan(11, clients=60)
    a = {c.client_id: (c.drops, c.offline, c.seed) for c in small.clients if not c.spike}
    b = {c.client_id: (c.drops, c.offline, c.seed) for c in big.clients if not c.spike}
    assert all(b[k] == v for k, v in a.items())


def test_load_spike_adds_clients_inside_its_window():
    p = plan(5)
    spike = [c for c in p.clients if c.spike]
    assert len(spike) == 7
    assert all(900 <= c.start_at <= 960 and c.stop_at == 960 for c in spike)


def test_token_expiry_targets_half_the_base_fleet():
    f = next(f for f in plan(5).faults if f.kind == "token_expiry")
    assert len(f.targets) == 25 and max(f.targets) < 50


def test_timeline_orders_start_and_stop_and_skips_instant_stops():
    steps = timeline(plan(1).faults, duration=1200)
    assert [(s.at, s.action, s.fault.kind) for s in steps] == [
        (100, "start", "server_restart"), (300, "start", "token_expiry"),
        (600, "start", "partition"), (720, "stop", "partition"), (900, "start", "load_spike")]


def test_unknown_fault_kind_is_named():
    with pytest.raises(ValueError, match=r"faults\[0\]\.kind: unknown fault kind 'flood'"):
        make_plan(seed=1, clients=1, duration=10, groups=1, faults=[FaultSpec(at=1, kind="flood")])


def test_poisson_mean_gap_is_close_to_every():
    times = poisson_times(stream(1, "x"), 10.0, 0.0, 100_000.0)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert 9.0 < sum(gaps) / len(gaps) < 11.0


def test_pick_bounds():
    rng = stream(1, "p")
    assert pick(rng, 10, None) == tuple(range(10))
    assert pick(rng, 10, 0.0) == ()
    assert len(pick(rng, 10, 0.01)) == 1
