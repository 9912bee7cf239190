"""The resilience suite: every fault kind of the scenario format against the fixed system, with
nothing lost and nothing duplicated in either direction (server -> client: the delivery ledger;
client -> server: what users typed against what the server received). A crash restart runs in
`make test`; the other kinds are `slow`."""
from __future__ import annotations

import pytest

from harness.emulate.engine import emulate
from formats.record import finalize
from formats.scenario import from_dict
from formats.scenario.model import FAULT_KINDS

PARAMS = {
    "latency": {"latency": "400ms", "jitter": "100ms"}, "bandwidth": {"rate": 2},
    "server_restart": {"mode": "crash"}, "load_spike": {"clients": 6}, "ws_close": {"code": 4000},
}
LASTING = {"partition", "latency", "bandwidth", "slicer", "reset_peer", "timeout", "proxy_down",
           "auth_outage", "load_spike", "ws_close", "ws_drop_pings"}
FAST = {"server_restart"}


def scenario(kind: str) -> dict:
    fault = {"at": "12s", "kind": kind, **PARAMS.get(kind, {})}
    if kind in LASTING:
        fault["for"] = "8s"
    return {
        "name": f"resilience-{kind}", "seed": 5, "duration": "48s", "time_scale": 4,
        "system": {"behaviour": "fixed", "token_ttl": "15m", "heartbeat": {"interval": "5s", "timeout": "5s"}},
        "fleet": {"clients": 10, "profile": "fixed", "arrival": {"ramp": "3s"}, "messages": {"every": "3s"}},
        "faults": [fault], "gates": [],
    }


@pytest.mark.parametrize("kind", [k if k in FAST else pytest.param(k, marks=pytest.mark.slow) for k in FAULT_KINDS])
def test_nothing_lost_or_duplicated_in_either_direction(kind, tmp_path):
    out = tmp_path / "run"
    emulate(from_dict(scenario(kind)), out, progress=lambda snapshot: None)
    s = finalize(out)
    assert s["messages_sent"] > 0 and s["user_messages_sent"] > s["user_messages_indeterminate"], s
    assert (s["lost_messages"], s["duplicates_displayed"]) == (0, 0), s
    assert (s["lost_user_messages"], s["duplicated_user_messages"]) == (0, 0), s
