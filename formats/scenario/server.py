"""The server a scenario names, resolved once for both engines.

`server_profile(scenario)` maps `system` (behaviour, token TTL, heartbeat, live expiry, admission)
to one `ServerProfile` in scenario seconds: the model runs it as it is (`sim/server.py`), the
emulation converts it to the wall-clock flags of `stormbench serve` (`harness.emulate.engine.
server_options`). A trait is legacy when the base is legacy or the scenario lists it as legacy,
and fixed when it is listed as fixed; the loader refuses one listed on both sides.
"""
from __future__ import annotations

from dataclasses import dataclass

from formats.scenario.model import Scenario
from system.server.config import LEGACY_TRAITS
from system.server.lifecycle import EXPIRY_GRACE_S


@dataclass(frozen=True)
class ServerProfile:
    """Everything about the server that a scenario decides, in scenario seconds."""

    traits: frozenset[str]  # legacy traits in force (system.server.config.LEGACY_TRAITS)
    token_ttl: float
    refresh_ttl: float
    heartbeat_interval: float | None
    heartbeat_timeout: float | None
    live_expiry: bool
    expiry_grace: float
    max_connections: int | None
    handshake_rate: float | None  # per scenario second


def server_traits(scenario: Scenario) -> frozenset[str]:
    b = scenario.system.behaviour
    base = set(LEGACY_TRAITS) if b.base == "legacy" else set()
    return frozenset((base - set(b.fixed)) | set(b.legacy))


def server_profile(scenario: Scenario, expiry_grace: float = EXPIRY_GRACE_S) -> ServerProfile:
    """`expiry_grace` defaults to the server's; validate passes the one the emulation really ran."""
    s = scenario.system
    return ServerProfile(
        traits=server_traits(scenario),
        token_ttl=s.token_ttl,
        refresh_ttl=max(7 * 86400.0, scenario.duration * 2),  # never the limit within a run
        heartbeat_interval=s.heartbeat.interval,
        heartbeat_timeout=s.heartbeat.timeout,
        live_expiry=s.live_expiry,
        expiry_grace=expiry_grace,
        max_connections=s.admission.max_connections,
        handshake_rate=s.admission.handshake_rate,
    )
