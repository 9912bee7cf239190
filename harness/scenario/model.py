"""The resolved scenario: frozen dataclasses, every duration in scenario seconds.

Both engines read these objects and nothing else, so a field means the same in the
emulation and in the simulation. `to_dict()` gives the canonical form written to
`scenario.json`; it validates against the same schema and loads back to an equal
`Scenario`, so a run record can be replayed from its own scenario.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

CLIENT_FIXES: tuple[str, ...] = (
    "stable_socket", "refresh_before_reconnect", "exp_backoff", "jitter", "single_writer",
    "dedup_resume", "close_code_hygiene", "network_awareness", "listener_cleanup", "client_metrics",
)

FAULT_KINDS: tuple[str, ...] = (
    "partition", "latency", "bandwidth", "slicer", "reset_peer", "timeout", "proxy_down",
    "server_restart", "auth_outage", "token_expiry", "load_spike", "ws_close", "ws_drop_pings",
)

# Kinds that act on the network path of the clients they target (through their proxies), and all
# kinds that take `fraction` (those plus per-user token expiry); the others act on the whole system,
# and the schema refuses a `fraction` below 1 for them.
NETWORK_FAULT_KINDS: frozenset[str] = frozenset({
    "partition", "latency", "bandwidth", "slicer", "reset_peer", "timeout", "proxy_down",
    "ws_close", "ws_drop_pings",
})
CLIENT_TARGETED: frozenset[str] = NETWORK_FAULT_KINDS | {"token_expiry"}
SYSTEM_FAULT_KINDS: frozenset[str] = frozenset(FAULT_KINDS) - CLIENT_TARGETED

# Kind-specific parameters and their defaults (durations in seconds). A parameter
# without a default is required by the schema.
FAULT_PARAMS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "partition": {},
    "latency": {"latency": None, "jitter": 0.0, "stream": "downstream"},
    "bandwidth": {"rate": None, "stream": "downstream"},
    "slicer": {"average_size": 64, "size_variation": 32, "delay": 0.01, "stream": "downstream"},
    "reset_peer": {"timeout": 0.0, "stream": "downstream"},
    "timeout": {"timeout": 0.0, "stream": "downstream"},
    "proxy_down": {},
    "server_restart": {"mode": "graceful"},
    "auth_outage": {},
    "token_expiry": {},
    "load_spike": {"clients": None},
    "ws_close": {"code": None},
    "ws_drop_pings": {},
})
DURATION_PARAMS = frozenset({"latency", "jitter", "delay", "timeout"})


#: the emulation's clocks: one event loop on scenario time, or real processes on the wall clock
CLOCKS: tuple[str, ...] = ("virtual", "wall")


@dataclass(frozen=True)
class ClientProfile:
    """Which client fixes are on: a base profile plus explicit changes (`Fixes.with_changes`)."""

    base: str = "fixed"
    enable: tuple[str, ...] = ()
    disable: tuple[str, ...] = ()

    def to_dict(self) -> str | dict:
        if not self.enable and not self.disable:
            return self.base
        return {"base": self.base, "enable": list(self.enable), "disable": list(self.disable)}


@dataclass(frozen=True)
class SystemBehaviour:
    """The server's behaviour: a base plus individual switches turned legacy or fixed."""

    base: str = "fixed"
    legacy: tuple[str, ...] = ()
    fixed: tuple[str, ...] = ()

    def to_dict(self) -> str | dict:
        if not self.legacy and not self.fixed:
            return self.base
        return {"base": self.base, "legacy": list(self.legacy), "fixed": list(self.fixed)}


@dataclass(frozen=True)
class Heartbeat:
    interval: float = 30.0
    timeout: float = 20.0


@dataclass(frozen=True)
class Admission:
    max_connections: int | None = None
    handshake_rate: float | None = None  # handshakes per second


@dataclass(frozen=True)
class SystemSpec:
    behaviour: SystemBehaviour = SystemBehaviour()
    token_ttl: float = 900.0
    heartbeat: Heartbeat = Heartbeat()
    admission: Admission = Admission()
    live_expiry: bool = False  # the server closes a live connection with 4401 when its token expires
    restart_downtime: float = 2.0  # virtual clock: a server_restart without `for` is down this long

    def to_dict(self) -> dict:
        admission: dict[str, Any] = {}
        if self.admission.max_connections is not None:
            admission["max_connections"] = self.admission.max_connections
        if self.admission.handshake_rate is not None:
            admission["handshake_rate"] = self.admission.handshake_rate
        return {
            "behaviour": self.behaviour.to_dict(),
            "token_ttl": self.token_ttl,
            "heartbeat": {"interval": self.heartbeat.interval, "timeout": self.heartbeat.timeout},
            "admission": admission,
            "live_expiry": self.live_expiry,
            "restart_downtime": self.restart_downtime,
        }


@dataclass(frozen=True)
class Offline:
    every: float
    for_: float


@dataclass(frozen=True)
class FleetSpec:
    clients: int
    sim_clients: int
    profile: ClientProfile = ClientProfile()
    ramp: float = 0.0                     # arrivals spread uniformly over [0, ramp)
    message_every: float | None = None    # mean interval between user messages per client
    drop_every: float | None = None       # mean interval between per-client network drops
    offline: Offline | None = None        # per-client offline periods

    def to_dict(self) -> dict:
        network: dict[str, Any] = {}
        if self.drop_every is not None:
            network["drops"] = {"every": self.drop_every}
        if self.offline is not None:
            network["offline"] = {"every": self.offline.every, "for": self.offline.for_}
        out: dict[str, Any] = {
            "clients": self.clients,
            "sim_clients": self.sim_clients,
            "profile": self.profile.to_dict(),
            "arrival": {"ramp": self.ramp},
            "network": network,
        }
        if self.message_every is not None:
            out["messages"] = {"every": self.message_every}
        return out


@dataclass(frozen=True)
class Fault:
    """One entry of the fault timeline; `params` holds the kind-specific fields with defaults filled."""

    at: float
    kind: str
    for_: float | None = None   # None: instantaneous, or until the run ends for lasting kinds
    fraction: float = 1.0       # share of clients the fault hits (proxy-side and per-client kinds)
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def end(self) -> float:
        return self.at + (self.for_ or 0.0)

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"at": self.at, "kind": self.kind}
        if self.for_ is not None:
            out["for"] = self.for_
        out["fraction"] = self.fraction
        out.update(self.params)
        return out


@dataclass(frozen=True)
class Scenario:
    name: str
    duration: float
    fleet: FleetSpec
    description: str = ""
    seed: int = 0
    time_scale: float = 1.0
    clock: str = "wall"                         # the emulation's clock: "virtual" or "wall" (CLOCKS)
    system: SystemSpec = SystemSpec()
    faults: tuple[Fault, ...] = ()
    gates: tuple[Mapping[str, Any], ...] = ()   # raw gate specs; `harness.gates.load_gates` parses them
    gates_file: str | None = None              # where `gates` came from, when a file
    source: str | None = None                  # the scenario file, for error messages

    @property
    def wall_duration(self) -> float:
        """Seconds of wall time a wall-clock emulation needs (scenario duration compressed by time_scale)."""
        return self.duration / self.time_scale

    @property
    def virtual(self) -> bool:
        """Whether the emulation runs on the virtual clock (README "Clocks")."""
        return self.clock == "virtual"

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "seed": self.seed,
            "duration": self.duration,
            "time_scale": self.time_scale,
            "clock": self.clock,
            "system": self.system.to_dict(),
            "fleet": self.fleet.to_dict(),
            "faults": [f.to_dict() for f in self.faults],
            "gates": [dict(g) for g in self.gates],
        }
