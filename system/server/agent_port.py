"""The seam between the chat server and whatever answers user messages.

The server calls `respond` through `asyncio.to_thread` (the loop's default executor, a
worker thread unless the loop's owner set another), so a backend may block on SQLite or
CPU; its execution time is that thread's CPU time. Each returned dict is the body of one
`assistant_message`: `agent`, `text`, optional `actions`; the server adds `v`,
`type`, `id` and `seq`. A dict may also carry `meta` (`{"tenure": str,
"results": int}`), which the server records in the agent metrics and never sends.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol, runtime_checkable


@runtime_checkable
class AgentBackend(Protocol):
    def respond(self, conversation_id: str, text: str, request_version: str) -> list[dict]: ...


class EchoBackend:
    """Answers every message with its own text: the server's stand-in agent."""

    name = "echo"

    def respond(self, conversation_id: str, text: str, request_version: str) -> list[dict]:
        return [{"agent": "echo", "text": text, "meta": {"tenure": "none", "results": 0}}]


BACKENDS = ("echo", "supervisor")


def load_backend(name: str, db_path: str | Path | None = None) -> AgentBackend:
    """'echo', 'supervisor' (the real-estate supervisor, imported only when chosen),
    or 'package.module:Factory' for a custom backend; `db_path` is the listings database."""
    if name == "echo":
        return EchoBackend()
    if name == "supervisor":
        from system.agent.supervisor import Supervisor  # owned by the agent package

        return Supervisor(db_path) if db_path is not None else Supervisor()
    if ":" in name:
        module_name, _, attr = name.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        backend = factory(db_path) if db_path is not None else factory()
        if not isinstance(backend, AgentBackend):
            raise TypeError(f"{attr} did not return an object with respond()")
        return backend
    raise ValueError(f"expected one of {', '.join(BACKENDS)} or 'module:Factory'")
