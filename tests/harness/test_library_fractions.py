"""Every fraction stat of every library scenario is a share of the fleet: between 0 and 1, for both
profiles and both engines (the legacy client's extra sockets once read 3.4, a half-shed fleet 1.14).
The model runs each scenario at a small fleet here; the emulation (slow) a quick, compressed variant."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from formats.gates import evaluate, load_gates
from formats.record import RunRecord
from formats.record.presence import presence
from commands.run import resolve_scenario_path
from formats.scenario import load
from tests.harness.test_scenario import LIBRARY_NAMES

ROOT = Path(__file__).resolve().parents[2]
QUICK_WALL_S = 15.0  # the emulated variant's wall time


def fraction_gates(scenario) -> list:
    return [g for g in load_gates(scenario.gates) if g.stat == "min_fraction"]


def check_fractions(run_dir: Path, scenario) -> None:
    rec = RunRecord(run_dir)
    seen = presence(rec)
    assert (seen.connected <= seen.expected + 1e-9).all(), "more clients connected than had arrived"
    fractions = [seen.fraction(s) for s in range(len(seen.connected))]
    assert all(f is None or 0.0 <= f <= 1.0 for f in fractions)
    gates = fraction_gates(scenario)
    assert gates, f"{scenario.name}: the library scenario has no fraction gate to check"
    for verdict in evaluate(gates, rec):
        assert verdict.observed is None or 0.0 <= verdict.observed <= 1.0, verdict.to_dict()


@pytest.mark.parametrize("profile", ["legacy", "fixed"])
@pytest.mark.parametrize("name", LIBRARY_NAMES)
def test_simulated_fractions_are_shares_of_the_fleet(name, profile, tmp_path):
    from sim.engine import simulate

    scenario = load(resolve_scenario_path(name), {"clients": 20, "profile": profile})
    simulate(scenario, tmp_path / "run")
    check_fractions(tmp_path / "run", scenario)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("profile", ["legacy", "fixed"])
@pytest.mark.parametrize("name", LIBRARY_NAMES)
def test_emulated_fractions_are_shares_of_the_fleet(name, profile, tmp_path):
    base = load(resolve_scenario_path(name))
    scale = max(base.time_scale, base.duration / QUICK_WALL_S)
    args = ["run", name, "--profile", profile, "--clients", "10", "--time-scale", f"{scale:g}",
            "--out", str(tmp_path / "run")]
    done = subprocess.run([sys.executable, "-m", "commands.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=280)
    assert (tmp_path / "run" / "summary.json").exists(), done.stderr[-3000:]
    check_fractions(tmp_path / "run", load(resolve_scenario_path(name), {"clients": 10, "profile": profile}))
    assert np.isfinite(RunRecord(tmp_path / "run").timeseries["active"]).all()
