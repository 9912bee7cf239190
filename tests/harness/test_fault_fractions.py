"""`fraction` means the same for every fault kind that takes it, in both engines' draws; the
schema refuses it where a kind acts on the whole system, so it is never silently ignored."""
from __future__ import annotations

import pytest

from commands.cli import UsageError
from harness.emulate.plan import make_plan
from formats.scenario import from_dict, realize_faults
from formats.scenario.model import CLIENT_TARGETED, FAULT_KINDS, SYSTEM_FAULT_KINDS
from formats.scenario.schema import scenario_schema

REQUIRED = {"latency": {"latency": "100ms"}, "bandwidth": {"rate": 8}, "load_spike": {"clients": 3},
            "ws_close": {"code": 4401}}
CLIENTS = 40


def scenario_with(kind: str, fraction: float):
    fault = {"at": "1m", "for": "30s", "kind": kind, "fraction": fraction, **REQUIRED.get(kind, {})}
    return from_dict({"name": "fractions", "seed": 5, "duration": "5m", "time_scale": 10,
                      "fleet": {"clients": CLIENTS}, "faults": [fault], "gates": []})


def test_the_schema_lists_the_same_kinds_as_the_model():
    fault = scenario_schema()["$defs"]["fault"]
    assert tuple(fault["properties"]["kind"]["enum"]) == FAULT_KINDS
    assert CLIENT_TARGETED | SYSTEM_FAULT_KINDS == set(FAULT_KINDS) and "proxy_down" in CLIENT_TARGETED


@pytest.mark.parametrize("kind", sorted(CLIENT_TARGETED))
def test_every_client_targeted_kind_hits_its_fraction(kind):
    (fault,) = realize_faults(scenario_with(kind, 0.25))
    assert fault.targets is not None and len(set(fault.targets)) == round(0.25 * CLIENTS)
    # the simulation draws from a bigger fleet through the same function
    (sim_fault,) = realize_faults(scenario_with(kind, 0.25), 400)
    assert len(sim_fault.targets) == 100


@pytest.mark.parametrize("kind", sorted(SYSTEM_FAULT_KINDS))
def test_a_fraction_on_a_system_wide_kind_is_refused(kind):
    with pytest.raises(UsageError, match=r"\$\.faults\[0\]\.fraction: expected no fraction below 1"):
        scenario_with(kind, 0.5)
    (fault,) = realize_faults(scenario_with(kind, 1.0))  # the canonical form (fraction 1) still loads
    assert fault.targets is None


def test_proxy_down_disables_only_the_targeted_clients_proxies():
    plan = make_plan(scenario_with("proxy_down", 0.25))
    (fault,) = plan.faults
    hit = {c.client_id for c in plan.clients if c.group in plan.group_of_fault[0]}
    assert hit == set(fault.targets) and len(hit) == 10 and plan.groups == 2
