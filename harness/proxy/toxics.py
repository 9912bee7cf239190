"""Toxic stages: what each of upstream Toxiproxy's toxics does to one direction of a connection.

Every toxic is a sans-IO stage driven by the link that owns it: the link
`push`es items (a `Chunk` of bytes with the time it was read, or `End`) while
`has_room()`, `pull(now)`s what is due and wakes up again at `deadline()`. A
stage never touches a socket or a clock of its own, which is what lets a toxic
be added to, updated on or removed from a live connection without losing a
byte: `drain()` hands back everything it holds, in order.

Upstream Toxiproxy 2.12 types: noop, latency, bandwidth, slow_close, timeout,
reset_peer, slicer, limit_data (semantics in shared/research/toxiproxy.md §2.4).
Deliberate differences: `bandwidth` with `rate <= 0` is unthrottled instead of
stalling or crashing; `slicer` with `average_size <= 0` passes chunks whole and
clamps cut points inside the segment; `reset_peer` sends RST only when it fires
(not on every connection made while it exists, whatever its toxicity).
The WebSocket-aware extensions live in `ws_toxics`; `registry` names them all.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from harness.proxy.wsframes import WsStream


@dataclass(slots=True)
class Chunk:
    data: bytes
    t: float  # when it was read; a latency toxic advances it by the delay it applied


@dataclass(frozen=True, slots=True)
class End:
    rst: bool = False  # close with RST (SO_LINGER 0) instead of FIN


END = End()
Item = Chunk | End


class Stage:
    """Base stage: forwards everything at once."""

    capacity = 1

    def __init__(self, attrs: dict[str, Any], rng: random.Random, ws: WsStream, now: float) -> None:
        self.attrs = attrs
        self.rng = rng
        self.ws = ws
        self.queue: list[tuple[float, Item]] = []  # (release time, item), in release order

    def has_room(self) -> bool:
        return len(self.queue) < self.capacity

    def push(self, item: Item, now: float) -> None:
        self.queue.append((now, item))

    def pull(self, now: float) -> list[Item]:
        n = 0
        for release, _ in self.queue:
            if release > now:
                break
            n += 1
        if not n:
            return []
        out = [item for _, item in self.queue[:n]]
        del self.queue[:n]
        return out

    def deadline(self) -> float | None:
        return self.queue[0][0] if self.queue else None

    def drain(self) -> list[Item]:
        out = [item for _, item in self.queue]
        self.queue.clear()
        return out

    def reconfigure(self, attrs: dict[str, Any], now: float) -> None:
        self.attrs = attrs


class Latency(Stage):
    """Delays each chunk by latency ± jitter without throttling: up to 1024 chunks
    (as upstream) and 32 MiB in flight, then back-pressure."""

    capacity = 1024
    max_bytes = 32 << 20

    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        self._last = 0.0
        self._bytes = 0

    def has_room(self) -> bool:
        return len(self.queue) < self.capacity and self._bytes < self.max_bytes

    def pull(self, now: float) -> list[Item]:
        out = super().pull(now)
        self._bytes -= sum(len(i.data) for i in out if isinstance(i, Chunk))
        return out

    def drain(self) -> list[Item]:
        self._bytes = 0
        return super().drain()

    def push(self, item: Item, now: float) -> None:
        if isinstance(item, End):
            self.queue.append((max(now, self._last), item))
            return
        jitter = self.attrs["jitter"]
        delay = self.attrs["latency"] + (self.rng.randrange(2 * jitter) - jitter if jitter > 0 else 0)
        release = max(item.t + delay / 1000.0, self._last)
        item.t = release
        self._last = release
        self._bytes += len(item.data)
        self.queue.append((release, item))


class Paced(Stage):
    """Takes one chunk at a time and releases its pieces on a schedule; `_next` is when
    the schedule is next free, so back-to-back chunks queue behind each other."""

    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        self._next = 0.0

    def has_room(self) -> bool:
        return not self.queue


class Bandwidth(Paced):
    """`rate` KB/s (1 KB = 1000 bytes); a chunk is sent in `rate*100`-byte pieces."""

    def push(self, item: Item, now: float) -> None:
        rate = self.attrs["rate"]
        if isinstance(item, End) or rate <= 0:
            self.queue.append((max(now, self._next) if rate > 0 else now, item))
            return
        # keep a continuous schedule (timer lateness is carried over) unless the link was idle
        t = self._next if self._next >= now - 0.05 else now
        step = rate * 100
        for i in range(0, len(item.data), step):
            piece = item.data[i : i + step]
            t += len(piece) / (rate * 1000.0)
            self.queue.append((t, Chunk(piece, item.t)))
        self._next = t


class SlowClose(Stage):
    capacity = 2

    def push(self, item: Item, now: float) -> None:
        delay = self.attrs["delay"] / 1000.0 if isinstance(item, End) else 0.0
        self.queue.append((now + delay, item))


class Timeout(Stage):
    """Drops all data; closes after `timeout` ms without data (never when 0)."""

    def __init__(self, attrs: dict[str, Any], rng: random.Random, ws: WsStream, now: float) -> None:
        super().__init__(attrs, rng, ws, now)
        self._closed = False
        self._arm(now)

    def _arm(self, now: float) -> None:
        t = self.attrs["timeout"]
        self._fire = now + t / 1000.0 if t > 0 else None

    def has_room(self) -> bool:
        return True

    def push(self, item: Item, now: float) -> None:
        if self._closed:
            return
        if isinstance(item, End):
            self._closed = True
            self.queue.append((now, item))
        else:
            self._arm(now)

    def pull(self, now: float) -> list[Item]:
        if not self._closed and self._fire is not None and now >= self._fire:
            self._closed = True
            return [END]
        return super().pull(now)

    def deadline(self) -> float | None:
        return None if self._closed else self._fire if not self.queue else self.queue[0][0]

    def drain(self) -> list[Item]:
        # removing a timeout toxic closes the connection (upstream behaviour, #159)
        return [] if self._closed else [END]

    def reconfigure(self, attrs: dict[str, Any], now: float) -> None:
        super().reconfigure(attrs, now)
        self._arm(now)


class ResetPeer(Stage):
    """After the first data (or EOF), wait `timeout` ms and reset both sockets."""

    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        self._fire: float | None = None
        self._done = False

    def has_room(self) -> bool:
        return True

    def push(self, item: Item, now: float) -> None:
        if self._fire is None:
            self._fire = now + self.attrs["timeout"] / 1000.0

    def pull(self, now: float) -> list[Item]:
        if not self._done and self._fire is not None and now >= self._fire:
            self._done = True
            return [End(rst=True)]
        return []

    def deadline(self) -> float | None:
        return None if self._done else self._fire

    def drain(self) -> list[Item]:
        return []


class Slicer(Paced):
    """Cuts each chunk by recursive bisection, `delay` µs after each slice."""

    def push(self, item: Item, now: float) -> None:
        t = max(now, self._next)
        if isinstance(item, End):
            self.queue.append((t, item))
            return
        step = self.attrs["delay"] / 1e6
        for a, b in self._cuts(len(item.data)):
            self.queue.append((t, Chunk(item.data[a:b], item.t)))
            t += step
        self._next = t

    def _cuts(self, length: int) -> list[tuple[int, int]]:
        avg, var = self.attrs["average_size"], max(0, self.attrs["size_variation"])
        if avg <= 0:
            return [(0, length)]
        out: list[tuple[int, int]] = []
        stack = [(0, length)]
        while stack:
            a, b = stack.pop()
            if (b - a) - avg <= var or b - a < 2:
                out.append((a, b))
                continue
            mid = a + (b - a) // 2
            if var > 0:
                mid += self.rng.randrange(var * 2) - var
            mid = min(max(mid, a + 1), b - 1)
            stack.append((mid, b))
            stack.append((a, mid))
        return out


class LimitData(Stage):
    """Forwards the first `bytes` bytes of this direction, then closes."""

    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        self.count = 0  # survives updates on the same connection
        self._closed = False

    def has_room(self) -> bool:
        return True

    def push(self, item: Item, now: float) -> None:
        if self._closed:
            return
        if isinstance(item, End):
            self._closed = True
            self.queue.append((now, item))
            return
        left = self.attrs["bytes"] - self.count
        if left > 0:
            data = item.data[:left]
            self.count += len(data)
            self.queue.append((now, Chunk(data, item.t)))
        if self.count >= self.attrs["bytes"]:
            self._closed = True
            self.queue.append((now, END))
