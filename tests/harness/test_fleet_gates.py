"""The library's fleet-relative herd gates: the same bar at any fleet size, passing a spread herd and
failing a lockstep one (hand-built records), and on the model's runs of the scenarios (slow)."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from formats.gates import FAIL, PASS, evaluate, load_gates
from formats.record import RunRecord, finalize
from formats.scenario import load
from tests.harness.synth import session, write_record

ROOT = Path(__file__).resolve().parents[2]
HERD_GATES = {"deploy-storm": "reconnect peak spread", "load-spike": "retry peak"}


def library_gate(scenario: str):
    [gate] = [g for g in load_gates(load(ROOT / "scenarios" / f"{scenario}.yaml").gates)
              if g.name == HERD_GATES[scenario]]
    return gate


def herd(tmp: Path, clients: int, spread_s: int) -> RunRecord:
    """Every client closed with 1012 at 60 s and back within `spread_s` seconds, evenly."""
    events = []
    for i in range(clients):
        back = 60 + (i * spread_s) // clients
        events += session(f"c{i}", f"k{i}", [(0, 1, 60, 1012), (back, back, None, None)])
    out = write_record(tmp / f"herd-{clients}-{spread_s}", events, duration=150, clients=clients,
                       faults=[{"at": 60, "kind": "server_restart"}])
    finalize(out)
    return RunRecord(out)


@pytest.mark.parametrize("scenario", sorted(HERD_GATES))
def test_a_spread_herd_passes_and_a_lockstep_one_fails_at_every_fleet_size(scenario, tmp_path):
    gate = library_gate(scenario)
    assert gate.fleet_factor == pytest.approx(0.3)
    for clients in (20, 400):
        [spread] = evaluate([gate], herd(tmp_path, clients, spread_s=10))   # 10 % of the fleet a second
        [lockstep] = evaluate([gate], herd(tmp_path, clients, spread_s=1))  # all of it in one second
        assert (spread.verdict, spread.observed, spread.threshold) == (PASS, clients / 10, 0.3 * clients)
        assert (lockstep.verdict, lockstep.observed) == (FAIL, clients)


def simulate(scenario: dict, out: Path) -> RunRecord:
    from sim.engine import simulate as run_model

    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(scenario))
    run_model(load(path), out)
    finalize(out)
    return RunRecord(out)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_model_passes_fixed_clients_and_fails_clients_that_retry_every_second(tmp_path):
    """Each library herd gate on the model at the scenario's simulated fleet: fixed clients pass;
    legacy clients fail it (deploy-storm: in lockstep; load-spike: retrying every second against the
    fixed, shedding server; the legacy server sheds nobody, so there is no retry herd to judge)."""
    for scenario, gate_name in HERD_GATES.items():
        doc = yaml.safe_load((ROOT / "scenarios" / f"{scenario}.yaml").read_text())
        gate = library_gate(scenario)
        fixed = simulate(doc, tmp_path / f"{scenario}-fixed")
        legacy_doc = copy.deepcopy(doc)
        legacy_doc["fleet"]["profile"] = "legacy"
        if scenario == "deploy-storm":
            legacy_doc["system"]["behaviour"] = "legacy"
        legacy = simulate(legacy_doc, tmp_path / f"{scenario}-legacy")
        [passed], [failed] = evaluate([gate], fixed), evaluate([gate], legacy)
        assert passed.verdict == PASS, (scenario, passed)
        assert failed.verdict == FAIL, (scenario, failed)
