"""The model's parameters that depend on the machine and the server: measured, not guessed.

`stormbench calibrate` measures them on this machine (see `commands.calibrate`) and writes a
JSON file of this shape (`formats.calibration`, which ships a measured default). The run
record's meta names the file used, so a prediction can always be traced to its inputs.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from formats.calibration import read
_KINDS = ("lognormal", "exponential", "fixed")


@dataclass(frozen=True)
class Dist:
    """A positive service-time distribution given by its mean (and log-sd for lognormal)."""

    kind: str = "lognormal"
    mean: float = 0.001
    sigma: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"kind: expected one of {', '.join(_KINDS)}, got {self.kind!r}")
        if not (self.mean >= 0 and math.isfinite(self.mean)):
            raise ValueError(f"mean: expected a non-negative number of seconds, got {self.mean!r}")
        if self.sigma < 0:
            raise ValueError(f"sigma: expected a non-negative log-sd, got {self.sigma!r}")

    def times(self, factor: float) -> "Dist":
        """The same shape, every draw `factor` times longer (a time scale, or an agent's weight)."""
        return Dist(self.kind, self.mean * factor, self.sigma)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.kind == "fixed" or self.mean == 0:
            return np.full(n, self.mean)
        if self.kind == "exponential":
            return rng.exponential(self.mean, n)
        mu = math.log(self.mean) - self.sigma**2 / 2  # so that E[X] == mean
        return rng.lognormal(mu, self.sigma, n)

    def quantile(self, q: float) -> float:
        """The q-quantile, used to print what a calibration means in seconds."""
        from scipy import stats

        if self.kind == "fixed" or self.mean == 0:
            return self.mean
        if self.kind == "exponential":
            return -self.mean * math.log1p(-q)
        mu = math.log(self.mean) - self.sigma**2 / 2
        return math.exp(mu + self.sigma * float(stats.norm.ppf(q)))

    @classmethod
    def fit(cls, samples: list[float] | np.ndarray) -> "Dist":
        """A lognormal with the samples' mean and log-sd (what the calibration measures)."""
        x = np.asarray(samples, dtype=float)
        x = x[x > 0]
        if x.size < 2:
            raise ValueError(f"need at least 2 positive samples to fit a distribution, got {x.size}")
        return cls("lognormal", float(x.mean()), float(np.log(x).std(ddof=1)))


@dataclass(frozen=True)
class Testbed:
    """The emulation's own load generator, on the machine that runs the server: its client workers
    and its fault proxy take the same `cores` CPUs as the server. A mass expiry's herd is then
    served at the pace of the CPUs, not of the server alone: each token request costs the testbed
    `token_cost` of CPU before the server sees it, each connect `connect_cost`, and the server's
    own work needs one of the same cores. The server's work per token request and per connect is
    then its own CPU, `server_token` and `server_connect` (measured in the same bursts), in place of
    `token_service` and `handshake_service`: the handshake's service time is an end-to-end latency
    that includes the client's part, which the testbed now holds (None: keep the calibration's).
    Production has no such load generator, so only
    `stormbench validate` models it (`simulate(..., testbed=...)`), to predict what the emulation on
    this machine shows; `stormbench calibrate` measures it (`commands.calibrate_testbed`)."""

    cores: int = 2
    token_cost: Dist = field(default_factory=lambda: Dist("exponential", 0.0003))
    connect_cost: Dist = field(default_factory=lambda: Dist("exponential", 0.0005))
    server_token: Dist | None = None
    server_connect: Dist | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.cores, int) and not isinstance(self.cores, bool) and self.cores >= 1):
            raise ValueError(f"cores: expected an integer >= 1, got {self.cores!r}")

    def scaled(self, factor: float) -> "Testbed":
        """Each cost `factor` times longer (a time scale, or a sampled agent's weight)."""
        def longer(d: Dist | None) -> Dist | None:
            return None if d is None else d.times(factor)

        return replace(self, token_cost=longer(self.token_cost), connect_cost=longer(self.connect_cost),
                       server_token=longer(self.server_token), server_connect=longer(self.server_connect))

    def serving(self, cal: "Calibration") -> "Calibration":
        """`cal` with the server's CPU per token request and per connect as its service times."""
        return replace(cal, token_service=self.server_token or cal.token_service,
                       handshake_service=self.server_connect or cal.handshake_service)

    @classmethod
    def from_json(cls, data: Any, where: str) -> "Testbed":
        fields = {"cores", "token_cost", "connect_cost", "server_token", "server_connect"}
        if not isinstance(data, dict) or set(data) - fields:
            raise ValueError(f"{where}: field testbed: expected an object with some of {', '.join(sorted(fields))}, "
                             f"got {data!r}")
        kwargs = dict(data)
        for name in ("token_cost", "connect_cost", "server_token", "server_connect"):
            if kwargs.get(name) is not None:
                if not isinstance(kwargs[name], dict):
                    raise ValueError(f"{where}: field testbed.{name}: expected an object {{kind, mean, sigma}}, "
                                     f"got {kwargs[name]!r}")
                try:
                    kwargs[name] = Dist(**kwargs[name])
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"{where}: field testbed.{name}: {exc}") from None
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: field testbed: {exc}") from None


@dataclass(frozen=True)
class Calibration:
    """What the model needs to know about one server on one machine.

    `handshake_servers` and `handshake_service` are the accept path's capacity (c servers, each
    taking a service time per handshake): the quantity that decides how a reconnect herd queues.
    The remaining times are assumptions about the outside world, kept here so they are visible
    in the run record next to what was measured.
    """

    source: str = "built-in default"
    handshake_servers: int = 1
    handshake_service: Dist = field(default_factory=lambda: Dist("lognormal", 0.002, 0.5))
    token_latency: Dist = field(default_factory=lambda: Dist("lognormal", 0.003, 0.5))
    agent_latency: Dist = field(default_factory=lambda: Dist("lognormal", 0.005, 0.6))
    connect_timeout_s: float = 10.0  # a connect into a partition or an offline network fails after this
    refused_after_s: float = 0.001  # a connect to a server that is down is refused this fast
    restart_downtime_s: float = 2.0  # a restarting server accepts nothing for this long
    # The server is one process: its token endpoint and its handshakes queue for the same CPU, so a
    # herd that refreshes before it reconnects (a mass expiry) is spread by both service times. A token
    # request holds one of the accept path's servers for `token_service` (measured as 1 / the throughput
    # of a refresh burst); None models its cost as pure `token_latency` beside the accept path (the
    # virtual clock, where CPU takes no time). Either way the endpoint is the server's: down with it.
    token_service: Dist | None = None
    # A close the server makes (4401 after an error frame, 1013 shed, 1012 restart, 1001 keepalive)
    # ends when the server has read the client's close reply, which queues on the same CPU: a mass
    # expiry's closes complete one by one, between the refreshes their error frames started. Each
    # holds one of the accept path's servers for `close_service` (1 / the throughput of a close
    # burst, measured by `calibrate`); None: closes cost nothing.
    close_service: Dist | None = None
    # The emulation's load generator on this machine (see `Testbed`); None: not measured. Only
    # `stormbench validate` uses it: `run --engine simulate` models the system without it.
    testbed: Testbed | None = None
    measured: dict[str, Any] = field(default_factory=dict)  # raw figures from `stormbench calibrate`

    def __post_init__(self) -> None:
        if int(self.handshake_servers) < 1:
            raise ValueError(f"handshake_servers: expected an integer >= 1, got {self.handshake_servers!r}")
        for name in ("connect_timeout_s", "refused_after_s", "restart_downtime_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value >= 0):
                raise ValueError(f"{name}: expected a non-negative number of seconds, got {value!r}")

    def compressed(self, time_scale: float, open_timeout_floor_wall: float = 2.0) -> "Calibration":
        """This machine as an emulation compressed by `time_scale` experiences it, in scenario time.

        The emulation shortens every scenario duration but not the CPU's: a 2 ms handshake is
        2 x time_scale ms of scenario time, and so are token and agent latency and a restart.
        `stormbench validate` models the emulated run with this, the real system with `self`."""
        if time_scale == 1:
            return self

        return replace(
            self, source=f"{self.source}, compressed x{time_scale:g} as the emulation runs it",
            handshake_service=self.handshake_service.times(time_scale),
            token_latency=self.token_latency.times(time_scale),
            token_service=None if self.token_service is None else self.token_service.times(time_scale),
            close_service=None if self.close_service is None else self.close_service.times(time_scale),
            testbed=None if self.testbed is None else self.testbed.scaled(time_scale),
            agent_latency=self.agent_latency.times(time_scale), refused_after_s=self.refused_after_s * time_scale,
            restart_downtime_s=self.restart_downtime_s * time_scale,
            connect_timeout_s=max(self.connect_timeout_s, open_timeout_floor_wall * time_scale))

    def on_virtual_clock(self, restart_downtime_s: float) -> "Calibration":
        """This system as the virtual-clock emulation runs it: CPU takes no scenario time (handshakes,
        token requests, closes, agent replies and the load generator are free), and a restart keeps
        the server down for the scenario's `restart_downtime`. What stays is the system's own timing."""
        return replace(
            self, source=f"{self.source}, on the virtual clock (CPU takes no scenario time)",
            handshake_service=self.handshake_service.times(0.0), token_latency=self.token_latency.times(0.0),
            token_service=None, close_service=None, testbed=None, agent_latency=self.agent_latency.times(0.0),
            refused_after_s=0.0, restart_downtime_s=restart_downtime_s)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "calibration") -> "Calibration":
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(data).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}; expected some of {', '.join(sorted(known))}")
        kwargs = dict(data)
        for name in ("handshake_service", "token_latency", "agent_latency", "token_service", "close_service"):
            if kwargs.get(name) is not None:
                value = kwargs[name]
                if not isinstance(value, dict):
                    raise ValueError(f"{where}: field {name}: expected an object {{kind, mean, sigma}}, got {value!r}")
                try:
                    kwargs[name] = Dist(**value)
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"{where}: field {name}: {exc}") from None
        if kwargs.get("testbed") is not None:
            kwargs["testbed"] = Testbed.from_json(kwargs["testbed"], where)
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None


def load(path: str | Path | None = None) -> tuple[Calibration, str]:
    """The calibration in `path` (the shipped default when None) and the name to record for it."""
    data, where = read(path)
    return Calibration.from_json(data, where=where), where


def save(calibration: Calibration, path: str | Path) -> None:
    Path(path).write_text(json.dumps(calibration.to_json(), indent=2) + "\n")
