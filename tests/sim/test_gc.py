"""The model runs with CPython's cyclic collector off (`sim.world.no_cyclic_collection`): off while
it runs, back on after, and the run leaves next to nothing that only the collector would free (so
running without it costs no memory)."""
from __future__ import annotations

import gc

import pytest

from formats.scenario import load
from sim.calibration import load as load_calibration
from sim.world import ModelOptions, World
from tests.bench.bench_sim import SCENARIO


@pytest.mark.parametrize("profile", ["fixed", "legacy"])  # legacy: a refused handshake per expired token
def test_a_run_makes_next_to_no_cycles_and_runs_without_the_collector(profile: str):
    sc = load(SCENARIO, {"fleet.sim_clients": 500, "profile": profile})
    gc.collect()
    assert gc.isenabled()
    freed = _collected()
    world = World(sc, load_calibration()[0], options=ModelOptions(message_clients=50, keep_all_records=False),
                  sink=lambda records: None)  # the records kept would outnumber what the model holds
    during: set[bool] = set()
    world.run(progress=lambda _f: during.add(gc.isenabled()))
    assert during == {False}
    assert gc.isenabled()
    assert world.server.handshakes > 3000  # a day of drops, offline periods, a restart: many sockets and calls
    tracked = len(gc.get_objects())
    gc.collect()
    # every cycle the run made, none collected while it ran (counted with the collections that ran as
    # soon as the collector was back on)
    assert _collected() - freed < 0.001 * tracked


def _collected() -> int:
    """Objects the cyclic collector has freed in this process so far."""
    return sum(generation["collected"] for generation in gc.get_stats())
