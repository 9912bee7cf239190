"""Server configuration: one dataclass, so the CLI, the harness and tests build the same thing.

Every duration is in seconds and configurable, because the harness compresses
scenario time (a 15 min token TTL becomes 3.75 s at time scale 240).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from system.server.lifecycle import EXPIRY_GRACE_S

# stored user messages a start answers (the model's restart does the same: sim.server)
ANSWER_UNANSWERED = 100

# The legacy server's behaviours, each its own switch; `--legacy` turns on all of them.
LEGACY_TRAITS: dict[str, str] = {
    "handshake_403": "answer a bad or expired token (and a forbidden Origin) with HTTP 403 at the handshake",
    "no_shedding": "never shed load: the admission policy is not consulted, nothing is closed with 1013",
    "abrupt_shutdown": "on SIGTERM drop every connection without a close frame (clients see 1006)",
    "abrupt_errors": "on an error (a bad or expired token, invalid frames, an internal error) drop the "
                     "connection without an error or close frame (clients see 1006 and no reason)",
    "no_duration_tracking": "do not record connection durations (no ws_connection_duration_seconds)",
    "no_acks": "do not acknowledge user messages once stored, nor drop a resent one by its id (it is "
               "answered again)",
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
    close_timeout: float = 2.0       # how long a close waits for the peer's reply before dropping the socket
    # what one client can make the server hold (system.server.flow): a send backlog past
    # max_send_buffer bytes, or one that has not shrunk for send_timeout seconds, sheds it with 1013
    max_send_buffer: int = 1 << 20
    send_timeout: float = 30.0
    replay_page: int = 100           # messages per page of a `resume` replay, each page drained first
    resume_rate: float = 1.0         # `resume` frames per second per connection ...
    resume_burst: int = 5            # ... at most this many at once; beyond: error frame rate_limited
    # stored user messages never answered (the server died between `ack` and answer) that a start
    # answers through the agent, oldest first; the rest wait for the next start (0: none)
    answer_unanswered: int = ANSWER_UNANSWERED
    # rows one user can make the server keep: messages (and receipts) per conversation, and
    # conversations per user (system.server.store.Store); None: unbounded
    history_limit: int | None = 10_000
    conversations_per_user: int | None = 1_000
    # message and connection ids: random (None), or drawn from a generator seeded with this, so a
    # repeatable run (the virtual clock) writes the same delivery log twice; not secrets either way
    id_seed: int | None = None
    # /auth/token and /auth/refresh per user and per client address (None: unlimited); beyond: 429
    auth_user_rate: float | None = 5.0
    auth_user_burst: int = 20
    auth_address_rate: float | None = 100.0
    auth_address_burst: int = 1000

    def __post_init__(self) -> None:
        unknown = set(self.legacy_traits) - set(LEGACY_TRAITS)
        if unknown:
            raise ValueError(
                f"legacy trait(s) {', '.join(sorted(unknown))}: expected one of {', '.join(LEGACY_TRAITS)}"
            )
        if self.token_ttl <= 0:
            raise ValueError(f"token_ttl: expected > 0 seconds, got {self.token_ttl}")
        if self.refresh_ttl < self.token_ttl:  # pruning a family forgets its revocation only then
            raise ValueError(f"refresh_ttl: expected >= token_ttl ({self.token_ttl}), got {self.refresh_ttl}")
        for name in ("max_send_buffer", "replay_page", "resume_burst", "auth_user_burst", "auth_address_burst"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)}")
        for name in ("send_timeout", "resume_rate", "auth_user_rate", "auth_address_rate"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected > 0, got {getattr(self, name)}")
        for name in ("history_limit", "conversations_per_user"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)}")
        if self.answer_unanswered < 0:
            raise ValueError(f"answer_unanswered: expected >= 0, got {self.answer_unanswered}")
        if self.max_invalid_frames < 1:
            raise ValueError(f"max_invalid_frames: expected >= 1, got {self.max_invalid_frames}")

    def legacy(self, trait: str) -> bool:
        if trait not in LEGACY_TRAITS:
            raise KeyError(trait)
        return trait in self.legacy_traits
