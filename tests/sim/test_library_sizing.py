"""The library's simulated fleets fit the one server the model runs (see `sim.engine.scaled_scenario`):
a fleet larger than the scenario's admission cap would be shed with 1013 for the whole run."""
from __future__ import annotations

from pathlib import Path

import pytest

from formats.scenario import load
from sim.engine import simulate

LIBRARY = Path(__file__).resolve().parents[2] / "scenarios"
CAPPED = sorted(p.stem for p in LIBRARY.glob("*.yaml") if load(p).system.admission.max_connections is not None)
LONG_S = 3600.0  # a simulated day of 100,000 clients takes a minute: slow suite only


def run_params() -> list:
    return [pytest.param(name, marks=pytest.mark.slow) if load(LIBRARY / f"{name}.yaml").duration > LONG_S else name
            for name in CAPPED]


def test_the_library_has_capped_scenarios():
    assert {"deploy-storm", "load-spike"} <= set(CAPPED)


@pytest.mark.parametrize("name", CAPPED)
def test_the_simulated_fleet_fits_the_admission_cap(name):
    scenario = load(LIBRARY / f"{name}.yaml")
    cap = scenario.system.admission.max_connections
    assert scenario.fleet.sim_clients <= cap, f"{name}.yaml: fleet.sim_clients above admission.max_connections"


@pytest.mark.parametrize("name", run_params())
def test_the_simulated_fleet_is_held_by_one_server(name, tmp_path):
    """The whole simulated fleet gets connected at once and the fixed profile loses nothing."""
    scenario = load(LIBRARY / f"{name}.yaml")
    summary = simulate(scenario, tmp_path / name)
    assert summary["peak_active"] >= scenario.fleet.sim_clients
    assert summary["lost_messages"] == 0 and summary["duplicates_displayed"] == 0
