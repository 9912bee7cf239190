"""The agents the supervisor can route to, and what an agent must provide.

Every module in `system.agent.agents` that defines `AGENT = AgentSpec(...)` is an
agent: adding a car-rental agent is one new module there, no edit elsewhere.
An agent reads a message first (cheaply, and with a routing score) and answers
only if the router picks it, so the message is parsed once.
"""
from __future__ import annotations

import datetime as dt
import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol


@dataclass(frozen=True)
class AgentRequest:
    """One user message, as the agent contract's request plus the day it is read on."""
    version: str
    conversation_id: str
    text: str
    today: dt.date
    tenure: str | None = None  # a v1.1 client's preset ("short" | "long")


@dataclass(frozen=True)
class Reading:
    score: float    # 0..1, how much this message is for this agent
    parsed: Any     # the agent's own understanding, handed back to respond()
    reason: str     # a short word for the routing log


@dataclass(frozen=True)
class Reply:
    bodies: list[dict]   # assistant_message bodies (agent, text, optional actions)
    tenure: str          # for the agent metrics: short | long | unknown | none
    results: int         # items returned (listings shown)


class Agent(Protocol):
    name: str

    def new_state(self) -> Any: ...

    def read(self, request: AgentRequest, state: Any) -> Reading: ...

    def respond(self, request: AgentRequest, reading: Reading, state: Any) -> Reply: ...


@dataclass(frozen=True)
class AgentContext:
    listings_db: Path


@dataclass(frozen=True)
class AgentSpec:
    name: str
    factory: Callable[[AgentContext], Agent]
    order: int = 100  # ties in routing score go to the lower order


def discover() -> list[AgentSpec]:
    """Every AgentSpec under system.agent.agents, in routing order."""
    from system.agent import agents

    specs = []
    for info in pkgutil.iter_modules(agents.__path__):
        module = importlib.import_module(f"{agents.__name__}.{info.name}")
        spec = getattr(module, "AGENT", None)
        if isinstance(spec, AgentSpec):
            specs.append(spec)
    return sorted(specs, key=lambda s: (s.order, s.name))
