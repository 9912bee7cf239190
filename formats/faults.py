"""The registry of fault kinds: the one place a kind is declared.

A kind is one `FaultKind` entry here (its parameters with their defaults, whom it acts on, whether
it lasts) plus one handler per engine: `harness/emulate/faults.py` (`HANDLERS`: what the emulation
does to the real system) and `sim/faults.py` (`KINDS`: what the model does). The scenario schema, the
loader, the gate parser (`phase: {after: KIND}`) and both engines read their lists from here, and a
test checks that each engine handles every kind.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Mapping

Scope = Literal["network", "client", "system"]


@dataclass(frozen=True)
class FaultKind:
    """`scope`: `network` acts on the path of the clients it targets (through their proxies, so it
    takes `fraction`), `client` on the clients it targets otherwise, `system` on the whole system
    (a `fraction` below 1 is refused). `params`: kind-specific fields and defaults (None: required;
    durations in seconds). `lasting`: a `for` makes it last and it is lifted at its end (token expiry
    and load spikes are instants; a spike's `for` is how long its clients stay)."""

    name: str
    scope: Scope
    params: Mapping[str, Any] = field(default_factory=dict)
    lasting: bool = True


_DOWN = {"stream": "downstream"}
REGISTRY: Mapping[str, FaultKind] = MappingProxyType({k.name: k for k in (
    FaultKind("partition", "network"),
    FaultKind("latency", "network", {"latency": None, "jitter": 0.0, **_DOWN}),
    FaultKind("bandwidth", "network", {"rate": None, **_DOWN}),
    FaultKind("slicer", "network", {"average_size": 64, "size_variation": 32, "delay": 0.01, **_DOWN}),
    FaultKind("reset_peer", "network", {"timeout": 0.0, **_DOWN}),
    FaultKind("timeout", "network", {"timeout": 0.0, **_DOWN}),
    FaultKind("proxy_down", "network"),
    FaultKind("server_restart", "system", {"mode": "graceful"}),
    FaultKind("auth_outage", "system"),
    FaultKind("token_expiry", "client", lasting=False),
    FaultKind("load_spike", "system", {"clients": None}, lasting=False),
    FaultKind("ws_close", "network", {"code": None}),
    FaultKind("ws_drop_pings", "network"),
)})

FAULT_KINDS: tuple[str, ...] = tuple(REGISTRY)
NETWORK_FAULT_KINDS: frozenset[str] = frozenset(k for k, v in REGISTRY.items() if v.scope == "network")
CLIENT_TARGETED: frozenset[str] = frozenset(k for k, v in REGISTRY.items() if v.scope != "system")
SYSTEM_FAULT_KINDS: frozenset[str] = frozenset(FAULT_KINDS) - CLIENT_TARGETED
FAULT_PARAMS: Mapping[str, Mapping[str, Any]] = MappingProxyType({k: v.params for k, v in REGISTRY.items()})
DURATION_PARAMS = frozenset({"latency", "jitter", "delay", "timeout"})


def lifted(kind: str) -> bool:
    """Whether a fault of `kind` with a `for` has a stop step at its end."""
    return REGISTRY[kind].lasting
