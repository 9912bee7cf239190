"""The model's run under its own collector thresholds (`sim.world.RUN_GC_THRESHOLDS`): in force while
it runs, restored after, and nothing left that only a full collection would free (so running with
far fewer full collections costs no memory)."""
from __future__ import annotations

import gc

from formats.scenario import load
from sim.calibration import load as load_calibration
from sim.world import RUN_GC_THRESHOLDS, ModelOptions, World
from tests.bench.bench_sim import SCENARIO


def test_a_run_collects_young_and_leaves_nothing_for_a_full_collection():
    sc = load(SCENARIO, {"fleet.sim_clients": 500, "profile": "fixed"})
    gc.collect()
    before = gc.get_threshold()
    assert before != RUN_GC_THRESHOLDS
    world = World(sc, load_calibration()[0], options=ModelOptions(message_clients=50, keep_all_records=False))
    during: set[tuple[int, int, int]] = set()
    full: list[int] = []

    def count(phase: str, info: dict) -> None:
        if phase == "stop" and info["generation"] == 2:
            full.append(info["collected"])

    gc.callbacks.append(count)
    try:
        world.run(progress=lambda _f: during.add(gc.get_threshold()))
    finally:
        gc.callbacks.remove(count)
    assert during == {RUN_GC_THRESHOLDS}
    assert gc.get_threshold() == before
    assert world.server.handshakes > 3000  # a day of drops, offline periods, a restart: many sockets and calls
    tracked = len(gc.get_objects())
    assert gc.collect() + sum(full) < 0.001 * tracked
