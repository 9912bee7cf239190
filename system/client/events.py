"""The policy's vocabulary: events in (what happened, with the time) and actions out (what to do).

Plain frozen dataclasses so that the asyncio driver and the SimPy model speak the
same language and a test can compare whole decision traces. `sock` is an integer
the policy allocates per client; the driver maps it to a real or simulated socket.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional, Union


# ---- events (inputs); every event carries `now`, the driver's clock in seconds ----

@dataclass(frozen=True)
class Start:
    now: float


@dataclass(frozen=True)
class Stop:
    now: float


@dataclass(frozen=True)
class TokenResult:
    """Answer to FetchToken. `status` is the HTTP status (None when the request never got one);
    `expires_at` is on the driver's clock (None: the policy assumes `token_ttl`)."""
    now: float
    ok: bool
    status: Optional[int] = None
    access_token: Optional[str] = None
    expires_at: Optional[float] = None


@dataclass(frozen=True)
class SocketOpened:
    now: float
    sock: int


@dataclass(frozen=True)
class HandshakeFailed:
    """`status` is the HTTP status of a refused upgrade; None for a refused or timed-out connect."""
    now: float
    sock: int
    status: Optional[int] = None


By = Literal["server", "client", "network"]


@dataclass(frozen=True)
class SocketClosed:
    """`by`: who ended it — the server's close frame, our own close, or the network (code 1006)."""
    now: float
    sock: int
    code: int
    reason: str = ""
    by: By = "server"


@dataclass(frozen=True)
class FrameReceived:
    now: float
    sock: int
    frame: dict


@dataclass(frozen=True)
class TimerFired:
    now: float
    name: str


@dataclass(frozen=True)
class NetworkOffline:
    now: float


@dataclass(frozen=True)
class NetworkOnline:
    now: float


@dataclass(frozen=True)
class UserMessage:
    now: float
    text: str


Event = Union[Start, Stop, TokenResult, SocketOpened, HandshakeFailed, SocketClosed, FrameReceived,
              TimerFired, NetworkOffline, NetworkOnline, UserMessage]


# ---- actions (outputs) ----

@dataclass(frozen=True)
class FetchToken:
    """refresh=True: rotate with the refresh token (`POST /auth/refresh`); False: log in anew (`POST /auth/token`)."""
    refresh: bool


@dataclass(frozen=True)
class OpenSocket:
    """`last_seq` is what the `resume` sent on open will ask from (None: this client does not resume)."""
    sock: int
    token: Optional[str]
    last_seq: Optional[int]


@dataclass(frozen=True)
class CloseSocket:
    sock: int
    code: int
    reason: str


@dataclass(frozen=True)
class Send:
    sock: int
    frame: dict


@dataclass(frozen=True)
class SetTimer:
    """Fire TimerFired(name) at `at` (driver clock); replaces a pending timer of the same name."""
    name: str
    at: float


@dataclass(frozen=True)
class CancelTimer:
    name: str


@dataclass(frozen=True)
class Display:
    message: dict


@dataclass(frozen=True)
class DropDuplicate:
    message_id: Any


@dataclass(frozen=True)
class GiveUp:
    """The user had to hard-refresh (a manual refresh); the policy restarts after `think_time`."""
    reason: str


Action = Union[FetchToken, OpenSocket, CloseSocket, Send, SetTimer, CancelTimer, Display, DropDuplicate, GiveUp]
