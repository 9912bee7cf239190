"""The data plane: one proxied TCP connection as two links and their toxic chains.

Built on asyncio protocols rather than streams so a connection costs no task and
no copy while no toxic is present: bytes read from one socket are written to the
other in the same callback. Back-pressure is the transports' own: when the
destination's write buffer passes its high-water mark (`pause_writing`), or too
many chunks wait in front of a slow toxic, the source stops being read, so every
buffer is bounded and a slow reader slows the sender down instead of growing
memory.

With no toxic in a direction, `Link.on_data` writes each read (256 KiB at most,
uvloop's read size) straight to the destination; a toxic added later takes the
very next chunk, and removing the last one flushes the chain before direct
writes resume, so switching loses and reorders nothing. Measured with perf and
py-spy on bulk transfers, ~85% of the proxy's CPU is the kernel's TCP work for
the second hop and ~2% is this module. A bulk stream that is not WebSocket is
therefore handed to a splice thread (`harness.proxy.splice`: no copy into user
space) until a toxic is added or the stream ends. On WebSocket traffic the
frame tracker adds ~40 ns per frame (`WsStream.observe`).

Like upstream Toxiproxy there is no half-close: when one side closes, what is
already in the chain is delivered and then both sockets are closed.
"""
from __future__ import annotations

import asyncio
import random
import socket
import struct
from collections import deque
from typing import TYPE_CHECKING, Any

from harness.proxy import splice
from harness.proxy.registry import TOXIC_TYPES
from harness.proxy.toxics import END, Chunk, Item, Stage
from harness.proxy.wsframes import OPAQUE, WsStream

if TYPE_CHECKING:
    from harness.proxy.proxy import Proxy, ToxicConfig

UPSTREAM, DOWNSTREAM = "upstream", "downstream"
BOX_LIMIT = 16  # chunks waiting in front of toxics before the source stops being read
DIAL_TIMEOUT = 10.0  # seconds to connect to the upstream before giving up on a client
WRITE_HIGH = 1 << 20  # bytes buffered for a slow destination before its source is paused


class Side(asyncio.Protocol):
    """One socket of a proxied connection: the client's or the upstream's."""

    def __init__(self, conn: "Connection") -> None:
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        self.out_link: Link | None = None  # reads from this socket
        self.in_link: Link | None = None  # writes to this socket
        self.alive = False
        self.write_paused = False
        self.early: list[bytes] = []  # read before the links existed
        self.early_end = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.alive = True
        self.transport.set_write_buffer_limits(high=WRITE_HIGH)
        if self is self.conn.client:
            self.conn.accepted()

    def data_received(self, data: bytes) -> None:
        if self.out_link is None:
            self.early.append(data)
            self.transport.pause_reading()  # type: ignore[union-attr]
        else:
            self.out_link.on_data(data)

    def eof_received(self) -> bool:
        if self.out_link is None:
            self.early_end = True
        else:
            self.out_link.on_end()
        return True  # keep the socket until the chain has delivered what it holds

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        if self.out_link is not None:
            self.out_link.on_end()
        else:
            self.early_end = True
        if self.in_link is not None:
            self.in_link.dest_lost()
        self.conn.side_lost()

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.in_link is not None:
            self.in_link.flow()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.in_link is not None:
            self.in_link.flow()

    def set_reading(self, on: bool) -> None:
        if self.alive and self.transport is not None and not self.transport.is_closing():
            (self.transport.resume_reading if on else self.transport.pause_reading)()

    def close(self, rst: bool = False, flush: bool = True) -> None:
        """Close after writing what is buffered (`flush`), at once, or at once with RST."""
        if self.transport is None or not self.alive:
            return
        if rst:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            self.transport.abort()
        elif flush:
            self.transport.close()
        else:
            self.transport.abort()


class Slot:
    """A toxic's place in one link's chain; `stage` is None where toxicity chose noop."""

    __slots__ = ("toxic", "stage", "generation")

    def __init__(self, toxic: "ToxicConfig", stage: Stage | None, generation: int) -> None:
        self.toxic, self.stage, self.generation = toxic, stage, generation


class Link:
    """One direction of a connection: source socket -> toxic chain -> destination socket."""

    def __init__(self, conn: "Connection", direction: str, src: Side, dst: Side) -> None:
        self.conn, self.direction, self.src, self.dst = conn, direction, src, dst
        self.loop = conn.loop
        self.counter = conn.proxy.counters[direction]
        self.ws = WsStream(upstream=direction == UPSTREAM)  # the stream as written so far
        self.slots: list[Slot] = []
        self.boxes: list[deque[Item]] = []  # boxes[i]: items waiting to enter slots[i]
        self.done = False
        self._ended = False
        self._paused = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._rng: random.Random | None = None
        self.splicer: splice.Splicer | None = None

    # -- toxics ----------------------------------------------------------------------------

    @property
    def rng(self) -> random.Random:
        if self._rng is None:
            self._rng = random.Random(f"{self.conn.key}/{self.direction}/draws")
        return self._rng

    def _make_stage(self, toxic: "ToxicConfig", generation: int, now: float) -> Stage | None:
        if toxic.toxicity <= 0:
            return None
        if toxic.toxicity < 1:
            draw = random.Random(f"{self.conn.key}/{self.direction}/{toxic.serial}/{generation}").random()
            if draw >= toxic.toxicity:
                return None
        return TOXIC_TYPES[toxic.type].stage(toxic.attributes, self.rng, self.ws.clone(), now)

    def add(self, toxic: "ToxicConfig") -> None:
        """Append a toxic at the end of the chain (it sees everything not yet written)."""
        spliced, left = self.splicer is not None, self.stop_splice()
        self.slots.append(Slot(toxic, self._make_stage(toxic, 0, self.loop.time()), 0))
        self.boxes.append(deque())
        if left:
            self._forward(left)
        if spliced:  # reading was paused for the splice thread: let flow() decide afresh
            self._paused = True
        self.advance()

    def remove(self, name: str) -> None:
        """Take a toxic out of the chain; what it held moves on, in order."""
        i = self._index(name)
        if i is None:
            return
        slot = self.slots.pop(i)
        box = self.boxes.pop(i)
        self._splice(i, slot.stage.drain() if slot.stage else [], box)
        self.advance()

    def restart(self, name: str) -> None:
        """A toxic was updated: re-draw its toxicity and apply the new attributes."""
        i = self._index(name)
        if i is None:
            return
        slot, now = self.slots[i], self.loop.time()
        slot.generation += 1
        fresh = self._make_stage(slot.toxic, slot.generation, now)
        if fresh is not None and slot.stage is not None:
            slot.stage.reconfigure(slot.toxic.attributes, now)
        elif fresh is not None:
            slot.stage = fresh
        elif slot.stage is not None:
            held, slot.stage = slot.stage.drain(), None
            self._splice(i + 1, held, deque())
        self.advance()

    def _index(self, name: str) -> int | None:
        return next((i for i, s in enumerate(self.slots) if s.toxic.name == name), None)

    def _splice(self, i: int, held: list[Item], newer: deque[Item]) -> None:
        """Place `held` then `newer` after the older items waiting at position i."""
        if i < len(self.boxes):
            self.boxes[i].extend(held)
            self.boxes[i].extend(newer)
        else:
            for item in [*held, *newer]:
                self._emit(item)
                if self.done:
                    return

    # -- data ------------------------------------------------------------------------------

    def on_data(self, data: bytes) -> None:
        self.counter.received += len(data)
        if self.done:
            return
        self._forward(data)
        if len(data) >= splice.BULK_READ:
            self._start_splice()

    def _forward(self, data: bytes) -> None:
        if not self.slots:
            self._write(data)
            return
        self.boxes[0].append(Chunk(data, self.loop.time()))
        self.advance()

    def on_end(self) -> None:
        self._take_back()
        if self._ended or self.done:
            return
        self._ended = True
        if not self.slots:
            self._emit(END)
            return
        self.boxes[0].append(END)
        self.advance()

    def dest_lost(self) -> None:
        self.stop_splice()
        self.done = True
        self._cancel_timer()
        self.boxes = [deque() for _ in self.boxes]

    def advance(self) -> None:
        """Move every item as far along the chain as it may go now."""
        if self.done:
            return
        now = self.loop.time()
        last = len(self.slots) - 1
        for i, slot in enumerate(self.slots):
            box, stage = self.boxes[i], slot.stage
            if stage is None:
                out: list[Item] = list(box)
                box.clear()
            else:
                out = []
                while True:  # releasing items may make room for more
                    while box and stage.has_room():
                        stage.push(box.popleft(), now)
                    released = stage.pull(now)
                    if not released:
                        break
                    out.extend(released)
            if not out:
                continue
            if i < last:
                self.boxes[i + 1].extend(out)
                continue
            for item in out:
                self._emit(item)
                if self.done:
                    return
        self._schedule()
        self.flow()

    def flow(self) -> None:
        """Read the source only while the destination and the chain keep up."""
        if self.done:
            return
        pause = self.dst.write_paused or sum(len(b) for b in self.boxes) > BOX_LIMIT
        if pause != self._paused:
            self._paused = pause
            self.src.set_reading(not pause)

    def _write(self, data: bytes) -> None:
        transport = self.dst.transport
        if not self.dst.alive or transport is None or transport.is_closing():
            return
        transport.write(data)
        self.counter.sent += len(data)
        if self.ws.state != OPAQUE:
            self.ws.observe(data)

    def _emit(self, item: Item) -> None:
        if isinstance(item, Chunk):
            self._write(item.data)
            return
        self.done = True
        self._cancel_timer()
        if item.rst:
            self.conn.close(rst=True)
        else:
            self.dst.close()

    # -- splice ----------------------------------------------------------------------------

    def _start_splice(self) -> None:
        """Hand a bulk, toxic-free, non-WebSocket stream to a splice thread, if one is free."""
        src, dst = self.src.transport, self.dst.transport
        if (not splice.AVAILABLE or not self.conn.proxy.splice or self.splicer is not None or self.slots or self.done or self._ended
                or self.ws.state != OPAQUE or splice.Splicer.live >= splice.MAX_SPLICERS
                or not (self.src.alive and self.dst.alive) or src is None or dst is None
                or src.is_closing() or dst.is_closing() or dst.get_write_buffer_size()):
            return  # (a byte still buffered for dst would be overtaken by the thread's writes)
        src_sock, dst_sock = src.get_extra_info("socket"), dst.get_extra_info("socket")
        if src_sock is None or dst_sock is None:
            return
        src.pause_reading()  # before the thread starts: no read of the loop's can overtake it
        try:
            self.splicer = splice.Splicer(src_sock.fileno(), dst_sock.fileno(), self.loop, self._splice_ended)
        except OSError:  # out of descriptors: stay on the event loop
            src.resume_reading()
            return
        self.counter.splicers.add(self.splicer)

    def stop_splice(self) -> bytes:
        """Take the stream back from its splice thread; returns the bytes it read but did not write."""
        splicer, self.splicer = self.splicer, None
        if splicer is None:
            return b""
        left = splicer.stop()
        self.counter.splicers.discard(splicer)
        self.counter.received += splicer.received
        self.counter.sent += splicer.sent  # `left` counts as sent once it is written
        return left

    def _take_back(self) -> None:
        """Stop the splice thread; the bytes it read but did not write go on first."""
        left = self.stop_splice()
        if left and not self.done:
            self._forward(left)

    def _splice_ended(self, reason: str) -> None:
        """The thread stopped by itself: end the link the way the event loop would have."""
        if self.splicer is None:
            return
        if reason == splice.SOURCE_EOF:
            self.on_end()
        elif reason == splice.SOURCE_ERROR:
            self._take_back()
            if self.src.transport is not None:
                self.src.transport.abort()  # connection_lost follows, as for a reset seen by the loop
        else:  # DESTINATION_ERROR: what was in the pipe cannot be delivered
            self.stop_splice()
            if self.dst.transport is not None:
                self.dst.transport.abort()

    # -- timers ----------------------------------------------------------------------------

    def _schedule(self) -> None:
        due = [d for s in self.slots if s.stage is not None and (d := s.stage.deadline()) is not None]
        at = min(due) if due else None
        if at == self._timer_at:
            return
        self._cancel_timer()
        if at is not None:
            self._timer_at = at
            self._timer = self.loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self.advance()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_at = None


class Connection:
    """A client connection and its upstream connection, joined by two links."""

    def __init__(self, proxy: "Proxy", number: int) -> None:
        self.proxy, self.number = proxy, number
        self.loop = asyncio.get_running_loop()
        self.key = f"{proxy.seed}/{proxy.name}/{number}"  # seeds every random draw of this connection
        self.client, self.server = Side(self), Side(self)
        self.links: dict[str, Link] = {}
        self._dial: asyncio.Task[Any] | None = None

    def accepted(self) -> None:
        cap = self.proxy.max_connections
        if cap is not None and len(self.proxy.connections) >= cap:
            self.proxy.refused += 1
            self.client.close(rst=True, flush=False)  # a bounded proxy: the newcomer is reset
            return
        self.proxy.connections.add(self)
        self.client.transport.pause_reading()  # type: ignore[union-attr]
        self._dial = self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        try:
            host, port = self.proxy.upstream_address()
            await asyncio.wait_for(self.loop.create_connection(lambda: self.server, host, port), DIAL_TIMEOUT)
        except Exception:  # any way of not reaching the upstream (bad address, refused, timeout, DNS)
            self.client.close()  # closes the client, as upstream does, rather than leaving it hanging
            return
        if not self.client.alive:
            self.server.close()
            return
        up = Link(self, UPSTREAM, self.client, self.server)
        down = Link(self, DOWNSTREAM, self.server, self.client)
        self.links = {UPSTREAM: up, DOWNSTREAM: down}
        for link in (up, down):
            for toxic in self.proxy.chain(link.direction):
                link.add(toxic)
            link.src.out_link = link
            link.dst.in_link = link
        for side in (self.client, self.server):
            early, side.early = side.early, []
            for data in early:
                side.out_link.on_data(data)  # type: ignore[union-attr]
            if side.early_end:
                side.out_link.on_end()  # type: ignore[union-attr]
        for side in (self.client, self.server):
            if side.out_link is not None and not side.out_link._paused:
                side.set_reading(True)

    def side_lost(self) -> None:
        if not self.client.alive and not self.server.alive:
            self.proxy.connections.discard(self)

    def close(self, rst: bool = False) -> None:
        """Drop both sockets now (proxy disabled, deleted or restarted, or a reset)."""
        if self._dial is not None and not self._dial.done():
            self._dial.cancel()
        for link in self.links.values():
            link.stop_splice()  # before the sockets close: a reset must not wait for the thread's descriptors
        self.client.close(rst, flush=False)
        self.server.close(rst, flush=False)
        self.proxy.connections.discard(self)
