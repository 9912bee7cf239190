"""Server configuration: one dataclass, so the CLI, the harness and tests build the same thing.

Every duration is in seconds and configurable, because the harness compresses
scenario time (a 15 min token TTL becomes 3.75 s at time scale 240).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from system.server.lifecycle import EXPIRY_GRACE_S

# The legacy server's behaviours, each its own switch; `--legacy` turns on all of them.
LEGACY_TRAITS: dict[str, str] = {
    "handshake_403": "answer a bad or expired token (and a forbidden Origin) with HTTP 403 at the handshake",
    "no_shedding": "never shed load: the admission policy is not consulted, nothing is closed with 1013",
    "abrupt_shutdown": "on SIGTERM drop every connection without a close frame (clients see 1006)",
    "abrupt_errors": "on an error (a bad or expired token, invalid frames, an internal error) drop the "
                     "connection without an error or close frame (clients see 1006 and no reason)",
    "no_duration_tracking": "do not record connection durations (no ws_connection_duration_seconds)",
}


@dataclass(frozen=True)
class ServerConfig:
    db_path: Path
    admin_key: str
    host: str = "127.0.0.1"
    port: int = 0
    http_port: int = 0
    legacy_traits: frozenset[str] = frozenset()
    secret: str | None = None  # None: generated once and kept in the database
    token_ttl: float = 900.0
    refresh_ttl: float = 7 * 86400.0
    heartbeat_interval: float | None = 20.0
    heartbeat_timeout: float | None = 20.0
    live_expiry: bool = False
    expiry_grace: float = EXPIRY_GRACE_S
    max_connections: int | None = None
    handshake_rate: float | None = None
    handshake_burst: int | None = None
    allowed_origins: tuple[str, ...] = ()  # empty: any Origin (and none) is allowed
    agent: str = "echo"
    agent_db: Path | None = None
    max_frame_bytes: int = 64 * 1024
    max_invalid_frames: int = 3
    shutdown_timeout: float = 5.0

    def __post_init__(self) -> None:
        unknown = set(self.legacy_traits) - set(LEGACY_TRAITS)
        if unknown:
            raise ValueError(
                f"legacy trait(s) {', '.join(sorted(unknown))}: expected one of {', '.join(LEGACY_TRAITS)}"
            )
        if self.token_ttl <= 0:
            raise ValueError(f"token_ttl: expected > 0 seconds, got {self.token_ttl}")
        if self.max_invalid_frames < 1:
            raise ValueError(f"max_invalid_frames: expected >= 1, got {self.max_invalid_frames}")

    def legacy(self, trait: str) -> bool:
        if trait not in LEGACY_TRAITS:
            raise KeyError(trait)
        return trait in self.legacy_traits
