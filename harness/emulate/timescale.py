"""Scenario time vs wall time.

A scenario is written in real time (24 h, 15 min token TTL); the emulation runs it
`factor` times faster, so every duration handed to the server or the clients is
divided by the factor, and every time measured on the wall is multiplied by it
before it is written to the run record. Processing time (a handshake, an agent
reply) does not shrink with the factor: `distortion_warnings` says when it becomes
a noticeable share of the scaled time constants.
"""
from __future__ import annotations

from dataclasses import dataclass

#: processing time above this share of a scaled time constant distorts the run
DISTORTION_SHARE = 0.05


@dataclass(frozen=True)
class TimeScale:
    factor: float = 1.0

    def __post_init__(self) -> None:
        if not self.factor > 0:
            raise ValueError(f"time_scale must be > 0, got {self.factor!r}")

    def to_wall(self, scenario_seconds: float) -> float:
        return scenario_seconds / self.factor

    def to_scenario(self, wall_seconds: float) -> float:
        return wall_seconds * self.factor

    def distortion_warnings(self, constants: dict[str, float], processing: dict[str, float]) -> list[str]:
        """One warning per (processing time, time constant) pair where the processing time
        (wall seconds, measured) exceeds DISTORTION_SHARE of the constant once scaled.

        `constants` are in scenario seconds (e.g. token_ttl, heartbeat interval),
        `processing` in wall seconds (e.g. handshake p95, agent reply p95)."""
        out = []
        for pname, ptime in sorted(processing.items()):
            for cname, cvalue in sorted(constants.items()):
                if cvalue is None or cvalue <= 0 or ptime is None:
                    continue
                scaled = self.to_wall(cvalue)
                share = ptime / scaled
                if share > DISTORTION_SHARE:
                    out.append(
                        f"time_scale {self.factor:g} shrinks {cname} ({cvalue:g}s) to {scaled * 1000:.1f}ms wall, "
                        f"and {pname} takes {ptime * 1000:.1f}ms ({share:.0%} of it): results that depend on "
                        f"{cname} are distorted; lower time_scale")
        return out
