"""WebSocket-aware toxics, stormbench extensions to Toxiproxy's set.

They read frame headers on the wire (never payloads), act only between frames,
and pass a stream that is not WebSocket (or whose upgrade failed) untouched:

- `ws_close` {code, reason, delay}: `delay` ms after the toxic starts on a
  connection (and once the upgrade has passed), at the next frame boundary,
  inject a close frame with `code` (0 means 1000) and `reason`, then close the
  connection. Downstream (the default) the client receives the close frame;
  upstream the server receives it, masked as a client frame. Code 1006 may not
  be sent on the wire: it closes the TCP connection at the frame boundary
  without a close frame, so the peer reports 1006.
- `ws_drop_pings` {}: drop ping and pong control frames of this direction, so a
  peer only notices a dead connection through its heartbeat timeout.
- `ws_hold` {}: hold every frame after the upgrade (back-pressure once 1 MiB is
  held) until the toxic is removed, then release them in order.
"""
from __future__ import annotations

import random
from typing import Any

from harness.proxy.toxics import END, Chunk, End, Item, Stage
from harness.proxy.wsframes import OP_PING, OP_PONG, OPAQUE, WsStream, close_frame


ABNORMAL = 1006  # never sent on the wire (RFC 6455 §7.4.1): ws_close drops the connection instead


class WsClose(Stage):
    def __init__(self, attrs: dict[str, Any], rng: random.Random, ws: WsStream, now: float) -> None:
        super().__init__(attrs, rng, ws, now)
        self._fired = False
        self._fire = now + attrs["delay"] / 1000.0

    def has_room(self) -> bool:
        return True

    def _inject(self, now: float) -> None:
        if self.attrs["code"] != ABNORMAL:
            frame = close_frame(self.attrs["code"] or 1000, self.attrs["reason"], masked=self.ws.upstream)
            self.queue.append((now, Chunk(frame, now)))
        self.queue.append((now, END))
        self._fired = True

    def push(self, item: Item, now: float) -> None:
        if self._fired:
            return
        if isinstance(item, End):
            self.queue.append((now, item))
            self._fired = True
            return
        for piece in self.ws.feed(item.data):  # (the tracker is already past the whole chunk: ask each piece)
            self.queue.append((now, Chunk(piece.data, item.t)))
            if now >= self._fire and piece.ends_frame:
                self._inject(now)
                return

    def pull(self, now: float) -> list[Item]:
        if not self._fired and now >= self._fire and self.ws.at_boundary:
            self._inject(now)
        return super().pull(now)

    def deadline(self) -> float | None:
        if self.queue:
            return self.queue[0][0]
        return None if self._fired or self.ws.state == OPAQUE else self._fire


class WsDropPings(Stage):
    def has_room(self) -> bool:
        return True

    def push(self, item: Item, now: float) -> None:
        if isinstance(item, End):
            self.queue.append((now, item))
            return
        kept = b"".join(p.data for p in self.ws.feed(item.data) if p.opcode not in (OP_PING, OP_PONG))
        if kept:
            self.queue.append((now, Chunk(kept, item.t)))


class WsHold(Stage):
    LIMIT = 1 << 20

    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        self.held: list[Item] = []
        self._held_bytes = 0

    def has_room(self) -> bool:
        return self._held_bytes < self.LIMIT

    def push(self, item: Item, now: float) -> None:
        if isinstance(item, End):
            # the peer is gone: let what was held and the close through
            self.queue.extend((now, held) for held in self.held + [item])
            self.held.clear()
            return
        for piece in self.ws.feed(item.data):
            if piece.opcode is None and not self.held:
                self.queue.append((now, Chunk(piece.data, item.t)))
            else:
                self.held.append(Chunk(piece.data, item.t))
                self._held_bytes += len(piece.data)

    def drain(self) -> list[Item]:
        out = super().drain() + self.held
        self.held = []
        return out


def check_close(attrs: dict[str, Any]) -> str | None:
    if attrs["code"] != 0 and not 1000 <= attrs["code"] <= 4999 or attrs["code"] in (1005, 1015):
        return "ws_close code must be 0 (= 1000), 1006 (abort) or a close code between 1000 and 4999 other than 1005/1015"
    if len(attrs["reason"].encode("utf-8")) > 123:
        return "ws_close reason must fit in 123 bytes of UTF-8"
    return None
