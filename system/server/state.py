"""What one running server knows: its parts (store, tokens, metrics, admission, agent) and
its live sessions, indexed by id and by conversation for fan-out."""
from __future__ import annotations

import asyncio
import os
import random
import uuid
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection

from system import clock
from system.server.admission import AdmissionConfig, AdmissionPolicy
from system.server.agent_port import AgentBackend, load_backend
from system.server.auth import TokenService
from system.server.auth_limits import SAVE_EVERY_S, AuthLimits
from system.server.config import ServerConfig
from system.server.fdlimit import AcceptGate, default_max_connections, open_files_limit
from system.server.lifecycle import Revocation
from system.server.logs import EventLog
from system.server.metrics import ServerMetrics
from system.server.ratelimit import TokenBucket
from system.server.store import Store


@dataclass(eq=False)
class Session:
    """One authenticated WebSocket connection."""

    id: str
    ws: ServerConnection
    user: str
    conversation_id: str
    opened_at: float  # clock.monotonic()
    expires_at: float  # clock.now(): when the presented access token expires
    expiry_changed: asyncio.Event = field(default_factory=asyncio.Event)
    invalid_frames: int = 0
    family: str = ""  # the refresh family of the session's current token
    resumes: TokenBucket | None = None  # the `resume` rate limit
    replaying: bool = False  # a paged replay is running: live fan-out leaves it to the replay


class ServerState:
    def __init__(self, config: ServerConfig, log: EventLog, agent: AgentBackend | None = None) -> None:
        self.config = config
        self.log = log
        self._ids = None if config.id_seed is None else random.Random(config.id_seed)
        self.store = Store(config.db_path, history_limit=config.history_limit,
                           conversations_per_user=config.conversations_per_user)
        self.tokens = TokenService(self.store, secret=config.secret, access_ttl=config.token_ttl,
                                   refresh_ttl=config.refresh_ttl)
        self.auth_limits = AuthLimits(config)
        self.auth_limits.load(self.store, clock.now())
        self._limits_save: asyncio.TimerHandle | None = None
        self.admission = AdmissionPolicy(AdmissionConfig(
            max_connections=(config.max_connections if config.max_connections is not None
                             else default_max_connections(open_files_limit())),
            handshake_rate=config.handshake_rate,
            burst=config.handshake_burst))
        self.agent = agent if agent is not None else load_backend(config.agent, config.agent_db)
        self.agent_name = getattr(self.agent, "name", config.agent)
        self.metrics = ServerMetrics(agent=self.agent_name)
        self.sessions: dict[str, Session] = {}
        self.by_conversation: dict[str, set[Session]] = {}
        self.answering: set[tuple[str, str]] = set()  # (conversation, message id) the agent is answering now
        self.handshakes = 0
        self.accepting = AcceptGate()  # paused while the descriptors' share for WebSockets is taken
        self.opened = 0
        self.messages_sent = 0
        self.closes_by_code: dict[int, int] = {}
        self.started = clock.monotonic()

    def new_id(self) -> str:
        """A 32-hex-digit id for a message or a connection (`ServerConfig.id_seed`)."""
        return uuid.uuid4().hex if self._ids is None else f"{self._ids.getrandbits(128):032x}"

    def auth_limited(self, address: str | None, user: str | None) -> float:
        """The auth rate limits' verdict on a token request (0.0: go ahead, else seconds to wait);
        the buckets it moved are stored within `SAVE_EVERY_S`."""
        wait = self.auth_limits.check(address, user, clock.now())
        if self._limits_save is None:
            self._limits_save = asyncio.get_running_loop().call_later(SAVE_EVERY_S, self._save_limits)
        return wait

    def _save_limits(self) -> None:
        self._limits_save = None
        self.auth_limits.save(self.store, clock.now())

    def close(self, crash: bool = False) -> None:
        """Store what is pending (unless this stop stands for a crash) and close the database."""
        if self._limits_save is not None:
            self._limits_save.cancel()
            if not crash:
                self._save_limits()
        self.store.close()

    def add(self, session: Session) -> None:
        self.sessions[session.id] = session
        self.by_conversation.setdefault(session.conversation_id, set()).add(session)
        self.opened += 1

    def remove(self, session: Session) -> None:
        self.sessions.pop(session.id, None)
        peers = self.by_conversation.get(session.conversation_id)
        if peers is not None:
            peers.discard(session)
            if not peers:
                del self.by_conversation[session.conversation_id]

    def expire_tokens(self, user: str | None) -> int:
        """Expire access tokens; with live expiry on, the affected live sessions must
        present a fresh token within the grace period. Returns how many sessions were hit."""
        self.tokens.expire(user)
        return self._expire_sessions(Revocation(None if user is None else frozenset({user})))

    def family_revoked(self, family: str) -> int:
        """A refresh family was revoked, and with it its access tokens: with live expiry on, the
        sessions holding one must present a token of another family within the grace period."""
        return self._expire_sessions(Revocation(family=family))

    def _expire_sessions(self, revocation: Revocation) -> int:
        """The core decides which sessions the revocation hits (`lifecycle.Revocation`); their
        expiry watchers see the new expiry at once."""
        hit = revocation.expire(self.config.live_expiry, ((s, s.user, s.family, s.expires_at)
                                                          for s in self.sessions.values()), clock.now())
        for session, expires_at in hit:
            session.expires_at = expires_at
            session.expiry_changed.set()
        return len(hit)

    def pick_for_drop(self, fraction: float, seed: int | None) -> list[Session]:
        ordered = sorted(self.sessions.values(), key=lambda s: s.id)
        count = round(fraction * len(ordered))
        return random.Random(seed).sample(ordered, count)

    def stats(self) -> dict:
        return {
            "connections_active": len(self.sessions),
            "connections_opened": self.opened,
            "handshakes": self.handshakes,
            "pid": os.getpid(),
            "admitted_active": self.admission.active,
            "max_connections": self.admission.config.max_connections,
            "accept_pauses": self.accepting.pauses,
            "admission_rejected": self.admission.rejected,
            "closes_by_code": {str(k): v for k, v in sorted(self.closes_by_code.items())},
            "messages_sent": self.messages_sent,
            "conversations_active": len(self.by_conversation),
            "auth_outage": self.tokens.rules.outage,
            "auth_rate_limited": self.auth_limits.refused,
            "refresh_tokens_stored": self.store.refresh_rows(),
            "legacy_traits": sorted(self.config.legacy_traits),
            "live_expiry": self.config.live_expiry,
            "uptime_s": round(clock.monotonic() - self.started, 3),
        }
