"""The model runs with CPython's cyclic collector off (`sim.world._no_cyclic_collection`): off while
it runs, back on after, and the run leaves next to nothing that only the collector would free (so
running without it costs no memory)."""
from __future__ import annotations

import gc

from formats.scenario import load
from sim.calibration import load as load_calibration
from sim.world import ModelOptions, World
from tests.bench.bench_sim import SCENARIO


def test_a_run_makes_next_to_no_cycles_and_runs_without_the_collector():
    sc = load(SCENARIO, {"fleet.sim_clients": 500, "profile": "fixed"})
    gc.collect()
    assert gc.isenabled()
    world = World(sc, load_calibration()[0], options=ModelOptions(message_clients=50, keep_all_records=False))
    during: set[bool] = set()
    world.run(progress=lambda _f: during.add(gc.isenabled()))
    assert during == {False}
    assert gc.isenabled()
    assert world.server.handshakes > 3000  # a day of drops, offline periods, a restart: many sockets and calls
    tracked = len(gc.get_objects())
    assert gc.collect() < 0.001 * tracked  # every cycle the run made, none collected while it ran
