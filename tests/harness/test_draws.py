"""One seed fixes every draw, through named streams both engines share."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from formats.scenario import (
    Fault, arrival_times, client_rng, drop_times, load, message_times, offline_periods, realize_faults,
)

STAGING = Path(__file__).resolve().parents[2] / "scenarios" / "staging-day.yaml"


def draws(scenario):
    return {
        "faults": [f.to_dict() for f in realize_faults(scenario)],
        "arrivals": arrival_times(scenario),
        "drops": [list(drop_times(scenario, i)) for i in range(20)],
        "offline": [list(offline_periods(scenario, i)) for i in range(20)],
        "messages": [list(message_times(scenario, i)) for i in range(5)],
        "jitter": [client_rng(scenario, i).random() for i in range(20)],
    }


def test_same_seed_same_draws_across_loads():
    assert draws(load(STAGING)) == draws(load(STAGING))


def test_another_seed_changes_the_draws():
    a, b = draws(load(STAGING)), draws(load(STAGING, {"seed": 43}))
    for key in a:
        assert a[key] != b[key], key


def test_fraction_targets_that_many_distinct_clients():
    s = load(STAGING)
    partition = next(f for f in realize_faults(s) if f.kind == "partition")
    assert len(partition.targets) == round(0.3 * s.fleet.clients) == len(set(partition.targets))
    assert next(f for f in realize_faults(s) if f.kind == "server_restart").targets is None


def test_adding_a_fault_does_not_shift_other_draws():
    s = load(STAGING)
    more = replace(s, faults=s.faults + (Fault(at=100.0, kind="partition", fraction=0.5),))
    assert [f.to_dict() for f in realize_faults(more)][: len(s.faults)] == [f.to_dict() for f in realize_faults(s)]
    assert arrival_times(more) == arrival_times(s)


def test_processes_stay_inside_the_run_and_match_their_means():
    s = load(STAGING)
    drops = [t for i in range(s.fleet.clients) for t in drop_times(s, i)]
    assert all(0 < t < s.duration for t in drops)
    expected = s.fleet.clients * s.duration / s.fleet.drop_every
    assert 0.8 * expected < len(drops) < 1.2 * expected
    for i in range(50):
        periods = list(offline_periods(s, i))
        assert all(a < b <= s.duration for a, b in periods)
        assert all(p[1] <= q[0] for p, q in zip(periods, periods[1:]))
    assert all(0 <= t <= s.fleet.ramp for t in arrival_times(s))
