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
        """One warning per processing time (wall seconds, measured: e.g. handshake, agent reply)
        that exceeds DISTORTION_SHARE of any time constant (scenario seconds: token TTL,
        heartbeat, backoff base) once scaled, naming every constant it distorts."""
        out = []
        for pname, ptime in sorted(processing.items()):
            if ptime is None:
                continue
            hit = []
            for cname, cvalue in sorted(constants.items(), key=lambda kv: kv[1] or 0):
                if cvalue is None or cvalue <= 0:
                    continue
                share = ptime / self.to_wall(cvalue)
                if share > DISTORTION_SHARE:
                    hit.append(f"{cname} {cvalue:g}s→{self.to_wall(cvalue) * 1000:.1f}ms ({share:.0%})")
            if hit:
                out.append(f"time_scale {self.factor:g}: {pname} takes {ptime * 1000:.1f}ms wall, more than "
                           f"{DISTORTION_SHARE:.0%} of the scaled {', '.join(hit)}; results that depend on "
                           f"these are distorted (lower time_scale)")
        return out
