"""The supervisor: the server's agent backend, routing each message to one agent.

It keeps each conversation's state (which agent said what, where a search
stands) and serialises the messages of one conversation, while different
conversations run in parallel on the server's worker threads. Conversations are
kept in a bounded LRU so a long soak cannot grow memory without limit.
Every body returned carries `meta` (`tenure`, `results`) for the server's agent
metrics; the server strips it before sending.
"""
from __future__ import annotations

import collections
import datetime as dt
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from . import contracts, routing
from .agents.real_estate.listings import ensure_default_db
from .registry import Agent, AgentContext, AgentRequest, AgentSpec, discover

log = logging.getLogger("stormbench.agent.routing")

FALLBACK = "general"
TODAY_ENV = "STORMBENCH_AGENT_TODAY"  # pins "today" (ISO date) for replayable sessions


@dataclass
class _Conversation:
    lock: threading.Lock = field(default_factory=threading.Lock)
    states: dict[str, Any] = field(default_factory=dict)


def _today_source(today: dt.date | Callable[[], dt.date] | None) -> Callable[[], dt.date]:
    if callable(today):
        return today
    if today is None and os.environ.get(TODAY_ENV):
        try:
            today = dt.date.fromisoformat(os.environ[TODAY_ENV])
        except ValueError:
            raise ValueError(f"{TODAY_ENV}: expected an ISO date such as 2026-11-26, "
                             f"got {os.environ[TODAY_ENV]!r}") from None
    if today is None:
        return dt.date.today
    return lambda: today


class Supervisor:
    """`Supervisor(listings_db)`; without a database it builds (once) and uses a small default one."""

    def __init__(self, listings_db: str | Path | None = None, *,
                 today: dt.date | Callable[[], dt.date] | None = None, max_conversations: int = 50_000,
                 agents: Sequence[AgentSpec] | None = None):
        """`agents` replaces discovery (every AGENT under system.agent.agents), e.g. to try a new agent."""
        self.listings_db = Path(listings_db) if listings_db is not None else ensure_default_db()
        context = AgentContext(listings_db=self.listings_db)
        specs = sorted(agents, key=lambda s: (s.order, s.name)) if agents is not None else discover()
        self.agents: dict[str, Agent] = {spec.name: spec.factory(context) for spec in specs}
        if FALLBACK not in self.agents:
            raise RuntimeError(f"no '{FALLBACK}' agent in system.agent.agents")
        self._today = _today_source(today)
        self._max = max_conversations
        self._conversations: collections.OrderedDict[str, _Conversation] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.routed: collections.Counter[str] = collections.Counter()

    def respond(self, conversation_id: str, text: str, request_version: str) -> list[dict]:
        """The agent port (system.server.agent_port.AgentBackend)."""
        return self.handle({"version": request_version, "conversation_id": conversation_id, "text": text})

    def handle(self, request: dict) -> list[dict]:
        """One agent-contract request (v1.0 or v1.1) -> assistant_message bodies with `meta`.

        Answers are v1.1 for both: v1.1 only adds fields and action types that a v1.0
        reader ignores, so one answer serves both (tests/agent/test_contracts.py proves it).
        """
        version = request.get("version")
        contracts.check("request", version if version in contracts.VERSIONS else contracts.LATEST, request)
        req = AgentRequest(request["version"], request["conversation_id"], request["text"], self._today(),
                           request.get("tenure"))
        conv = self._conversation(req.conversation_id)
        with conv.lock:
            readings = {}
            for name, agent in self.agents.items():
                if name not in conv.states:
                    conv.states[name] = agent.new_state()
                readings[name] = agent.read(req, conv.states[name])
            route = routing.choose(readings, FALLBACK)
            with self._lock:
                self.routed[route.agent] += 1
            log.info("route conversation=%s agent=%s score=%.2f reason=%s", req.conversation_id, route.agent,
                     route.score, route.reason)
            reply = self.agents[route.agent].respond(req, readings[route.agent], conv.states[route.agent])
        return [{**body, "meta": {"tenure": reply.tenure, "results": reply.results}} for body in reply.bodies]

    def _conversation(self, conversation_id: str) -> _Conversation:
        with self._lock:
            conv = self._conversations.get(conversation_id)
            if conv is None:
                conv = self._conversations[conversation_id] = _Conversation()
                if len(self._conversations) > self._max:
                    self._conversations.popitem(last=False)
            else:
                self._conversations.move_to_end(conversation_id)
            return conv

    @property
    def conversations(self) -> int:
        with self._lock:
            return len(self._conversations)
