"""The resolved scenario: frozen dataclasses, every duration in scenario seconds.

Both engines read these objects and nothing else, so a field means the same in the
emulation and in the simulation. `to_dict()` gives the canonical form written to
`scenario.json`; it validates against the same schema and loads back to an equal
`Scenario`, so a run record can be replayed from its own scenario.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

# The fault kinds live in their registry (formats.faults); these names are read from here too.
from formats.faults import (
    CLIENT_TARGETED, DURATION_PARAMS, FAULT_KINDS, FAULT_PARAMS, NETWORK_FAULT_KINDS, SYSTEM_FAULT_KINDS,
)


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
    # virtual clock: a server_restart without `for` is down this long (the loader's default: the
    # restart time `stormbench calibrate` measured, `formats.calibration`)
    restart_downtime: float = 0.0

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


#: the client time constants a scenario may state under `fleet` (as `ClientConfig`'s fields)
CLIENT_TIMES = ("restart_window", "base_delay", "max_delay", "legacy_delay", "overload_base", "stable_after",
                "think_time", "reorder_hold")


@dataclass(frozen=True)
class FleetSpec:
    clients: int
    sim_clients: int
    profile: ClientProfile = ClientProfile()
    ramp: float = 0.0                     # arrivals spread uniformly over [0, ramp)
    message_every: float | None = None    # mean interval between user messages per client
    drop_every: float | None = None       # mean interval between per-client network drops
    offline: Offline | None = None        # per-client offline periods
    # client time constants the scenario states (CLIENT_TIMES names, seconds); the rest keep
    # `ClientConfig`'s defaults
    client_times: tuple[tuple[str, float], ...] = ()

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
        out.update(self.client_times)
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
    gates: tuple[Mapping[str, Any], ...] = ()   # raw gate specs, as scenario.json keeps them
    checked_gates: tuple[Any, ...] = field(default=(), compare=False, repr=False)  # `formats.gates.Gate`s,
    # parsed and checked once by the loader: every judge of this run reads these
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
