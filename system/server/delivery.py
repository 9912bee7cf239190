"""The delivery log's rules, sans-IO: what is appended, what a `resume` replays, who gets a message.

Every `assistant_message` is appended to its conversation's log with the next `seq`, then pushed to
every open socket of the conversation (`fan_out`); a `resume {last_seq}` replays, to the asking
socket only and in order, what the log holds after `last_seq`. The asyncio server keeps the log in
SQLite (`system.server.store.Store`, which survives a restart), the model in a `MemoryLog`; both
build frames and pick replays and targets here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, TypeVar

from system import wire

S = TypeVar("S")


@dataclass(frozen=True)
class LoggedMessage:
    conversation_id: str
    seq: int
    id: str
    t: float
    frame: dict


def assistant_message(message_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The frame of an agent reply before it is logged: `body` holds `agent`, `text`, optional `actions`."""
    return {"v": wire.FRAME_VERSION, "type": "assistant_message", "id": message_id, **body}


def logged(conversation_id: str, last_seq: int, message_id: str, t: float, frame: dict) -> LoggedMessage:
    """Append after `last_seq`: the message takes the next seq, which its frame carries."""
    seq = last_seq + 1
    return LoggedMessage(conversation_id, seq, message_id, t, {**frame, "seq": seq})


def replay(messages: Iterable[LoggedMessage], last_seq: int) -> list[LoggedMessage]:
    """What a `resume {last_seq}` sends back: every message after `last_seq`, in seq order."""
    return sorted((m for m in messages if m.seq > last_seq), key=lambda m: m.seq)


def kept_after(last_seq: int, history_limit: int) -> int:
    """The seq at and below which a conversation's log is pruned once it reaches `last_seq`: a
    conversation keeps its last `history_limit` messages (and their receipts), so a client can make
    the server hold only so many rows however long it talks; a `resume` from before them replays what
    is kept, and the client's ledger shows the rest as lost, which it is."""
    return max(0, last_seq - history_limit)


def acks(traits: frozenset[str]) -> bool:
    """Whether a stored user message is acknowledged (`ack`, contract v1.1) and a resend of it (same
    id) dropped: not on a server with the legacy `no_acks` trait."""
    return "no_acks" not in traits


def fan_out(open_sockets: Iterable[S]) -> list[S]:
    """A logged message goes to every open socket of its conversation (the sender's other tabs too)."""
    return list(open_sockets)


class MemoryLog:
    """The delivery log in memory (the model's): `keep=False` keeps only each conversation's last seq,
    for fleets too large to hold every message (nothing can then be replayed)."""

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self._last: dict[str, int] = {}
        self._log: dict[str, list[LoggedMessage]] = {}

    def last_seq(self, conversation_id: str) -> int:
        return self._last.get(conversation_id, 0)

    def append(self, conversation_id: str, message_id: str, t: float, frame: dict) -> LoggedMessage:
        m = logged(conversation_id, self.last_seq(conversation_id), message_id, t, frame)
        self._last[conversation_id] = m.seq
        if self.keep:
            self._log.setdefault(conversation_id, []).append(m)
        return m

    def messages_after(self, conversation_id: str, last_seq: int) -> list[LoggedMessage]:
        if last_seq >= self._last.get(conversation_id, 0):
            return []  # the common resume: nothing after it (every client resumes on each reconnect)
        return replay(self._log.get(conversation_id, ()), last_seq)
