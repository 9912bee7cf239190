"""The seeded plan: same seed → same draws; groups hold exactly each fault's targets."""
from __future__ import annotations

from harness.emulate.plan import make_plan, timeline
from formats.scenario import from_dict

DOC = {
    "name": "plan-test", "seed": 7, "duration": "20m", "time_scale": 10,
    "fleet": {"clients": 40, "arrival": {"ramp": "1m"}, "messages": {"every": "2m"},
              "network": {"drops": {"every": "5m"}, "offline": {"every": "10m", "for": "30s"}}},
    "faults": [
        {"at": "10m", "for": "2m", "kind": "partition", "fraction": 0.3},
        {"at": "100s", "kind": "server_restart", "mode": "graceful"},
        {"at": "15m", "for": "1m", "kind": "load_spike", "clients": 7},
        {"at": "5m", "kind": "token_expiry", "fraction": 0.5},
        {"at": "12m", "for": "1m", "kind": "latency", "latency": "100ms", "fraction": 0.5},
    ],
    "gates": [],
}


def scenario(seed: int = 7, clients: int = 40):
    return from_dict({**DOC, "seed": seed, "fleet": {**DOC["fleet"], "clients": clients}})


def test_same_seed_same_plan_and_different_seed_differs():
    assert make_plan(scenario(7)).fingerprint() == make_plan(scenario(7)).fingerprint()
    assert make_plan(scenario(7)).fingerprint() != make_plan(scenario(8)).fingerprint()


def test_groups_hold_exactly_the_targets_of_each_network_fault():
    p = make_plan(scenario())
    by_id = {c.client_id: c for c in p.clients}
    for index, fault in enumerate(p.faults):
        if fault.kind not in ("partition", "latency"):
            continue
        hit = {c.client_id for c in p.clients if c.group in p.group_of_fault[index]}
        assert hit == set(fault.targets)
        assert len(hit) == round({"partition": 0.3, "latency": 0.5}[fault.kind] * 40)
    # 2 faults with independent targets → at most 4 signatures (spike clients are untargeted)
    assert 2 <= p.groups <= 4 and set(by_id) >= set(p.faults[0].targets)


def test_load_spike_adds_clients_inside_its_window():
    p = make_plan(scenario())
    spike = [c for c in p.clients if c.spike]
    assert len(spike) == 7 and {c.index for c in spike} == set(range(40, 47))
    assert all(900 <= c.start_at <= 930 and c.stop_at == 960 for c in spike)
    assert p.peak_clients == 47


def test_client_draws_stay_inside_its_lifetime():
    for c in make_plan(scenario()).clients:
        assert all(c.start_at <= t < c.stop_at for t in c.drops + c.messages)
        assert all(c.start_at <= a < b <= c.stop_at for a, b in c.offline)


def test_timeline_orders_start_and_stop_and_skips_instant_stops():
    steps = timeline(make_plan(scenario()).faults, duration=1200)
    assert [(s.at, s.action, s.fault.kind) for s in steps] == [
        (100, "start", "server_restart"), (300, "start", "token_expiry"),
        (600, "start", "partition"), (720, "stop", "partition"), (720, "start", "latency"),
        (780, "stop", "latency"), (900, "start", "load_spike")]


def test_fleet_is_capped_by_descriptors_and_says_so(tmp_path, monkeypatch):
    import harness.emulate.engine as engine

    monkeypatch.setattr(engine, "fd_limit", lambda: 600)   # (600 - 512) // 4 = 22 clients
    run = engine._Run(scenario(), tmp_path, None, None, None)
    try:
        p = run.plan()
    finally:
        run.teardown()
    assert run.bound == 22 and p.peak_clients <= 22
    assert len([c for c in p.clients if not c.spike]) == 40 - (47 - 22)
    assert any("fleet capped" in w and "open-files limit" in w for w in run.warnings)
