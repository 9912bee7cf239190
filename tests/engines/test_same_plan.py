"""Both engines read one plan of draws: for every library scenario the emulation's per-client plan and
the model's schedule come from the same `formats.scenario.plan.draw_plan`, draw for draw."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.emulate.plan import make_plan
from formats.scenario import load
from sim import calibration
from sim.world import World

LIBRARY_DIR = Path(__file__).resolve().parents[2] / "scenarios"
LIBRARY = sorted(LIBRARY_DIR.glob("*.yaml"))


@pytest.mark.parametrize("path", LIBRARY, ids=[p.stem for p in LIBRARY])
def test_both_engines_see_the_same_plan(path: Path) -> None:
    scenario = load(path)
    emulated = make_plan(scenario)
    world = World(scenario, calibration.load()[0], clients=scenario.fleet.clients)
    assert world.plan.fingerprint() == emulated.drawn.fingerprint()
    assert [f.to_dict() for f in world.realized] == [f.to_dict() for f in emulated.faults]
    lives = {life.client_id: life for life in world.plan.lifetimes}
    assert sorted(lives) == sorted(c.client_id for c in emulated.clients)
    for c in emulated.clients:  # every series the emulated client plays is the one the model schedules
        life = lives[c.client_id]
        assert (life.start, life.stop, life.spike) == (c.start_at, c.stop_at, c.spike)
        assert tuple(world.plan.drops(life)) == c.drops
        assert tuple(world.plan.offline(life)) == c.offline
        assert tuple(world.plan.messages(life)) == c.messages
        assert world.plan.rng(life).random() == c.rng.random()


def test_the_model_adds_the_planned_spike_clients() -> None:
    """The model's load spike brings exactly the plan's clients (the emulation's, at its fleet size)."""
    scenario = load(LIBRARY_DIR / "load-spike.yaml")
    spike = next(f for f in scenario.faults if f.kind == "load_spike")
    world = World(scenario, calibration.load()[0], clients=scenario.fleet.clients)
    world.build()
    world.env.run(until=spike.at + 1)
    emulated = make_plan(scenario)
    assert sorted(world.by_id) == sorted(c.client_id for c in emulated.clients)
    assert sum(c.spike for c in emulated.clients) == int(spike.params["clients"]) > 0


def test_a_larger_fleet_gets_the_same_share_of_spike_clients() -> None:
    scenario = load(LIBRARY_DIR / "load-spike.yaml")
    plan = World(scenario, calibration.load()[0], clients=2 * scenario.fleet.clients).plan
    spike = next(f for f in scenario.faults if f.kind == "load_spike")
    assert sum(life.spike for life in plan.lifetimes) == 2 * int(spike.params["clients"])
