"""Where WebSocket frames begin and end in one direction of a TCP byte stream.

Sans-IO: `WsStream.feed(data)` cuts bytes into pieces that each belong to the
HTTP upgrade or to exactly one frame, without holding any byte back, so the
proxy can watch a stream it forwards (to know whether it sits between two
frames) and the WebSocket-aware toxics can drop or hold whole frames. Frames are
never decoded: only the header is read (opcode, length, mask), so compressed
(permessage-deflate) traffic is handled the same as plain traffic.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass

HTTP, FRAMES, OPAQUE = "http", "frames", "opaque"
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
MAX_HANDSHAKE = 64 * 1024  # an upgrade longer than this is not treated as WebSocket
MAX_HEADER = 14  # 2 bytes, a 64-bit length, a mask key
# by a header's second byte: the size of a whole frame with a 7-bit length, 0 where the length is extended
_SHORT_FRAME = tuple((b & 0x7F) + (6 if b & 0x80 else 2) if b & 0x7F < 126 else 0 for b in range(256))


@dataclass(slots=True)
class Piece:
    data: bytes
    opcode: int | None  # None: HTTP upgrade bytes or a stream that is not WebSocket
    ends_frame: bool


class WsStream:
    """Frame boundaries of one direction; `upstream` is the client-to-server side."""

    def __init__(self, upstream: bool) -> None:
        self.upstream = upstream
        self.state = HTTP
        self._head = b""  # handshake bytes seen so far (bounded by MAX_HANDSHAKE)
        self._hdr = b""  # bytes of the current frame header seen so far
        self._opcode: int | None = None
        self._remaining = 0  # payload bytes left in the current frame

    def clone(self) -> "WsStream":
        other = WsStream(self.upstream)
        other.state, other._head, other._hdr = self.state, self._head, self._hdr
        other._opcode, other._remaining = self._opcode, self._remaining
        return other

    @property
    def at_boundary(self) -> bool:
        """True between two frames, after a successful upgrade."""
        return self.state == FRAMES and not self._hdr and self._remaining == 0

    def observe(self, data: bytes) -> None:
        """Advance over `data` without cutting it (the proxy's view of what it wrote)."""
        if self.state != OPAQUE:
            self._run(data, None)

    def feed(self, data: bytes) -> list[Piece]:
        pieces: list[Piece] = []
        self._run(data, pieces)
        return pieces

    def _run(self, data: bytes, pieces: list[Piece] | None) -> None:
        view = memoryview(data)
        pos, end = 0, len(data)
        while pos < end:
            if self.state == OPAQUE:
                _emit(pieces, view, pos, len(view), None, False)
                break
            if self.state == HTTP:
                pos = self._feed_handshake(view, pos, pieces)
                continue
            if pieces is None and not self._hdr:
                pos = self._skip_frames(data, pos)
                if pos == end:
                    break
            pos = self._feed_frame(view, pos, pieces)

    def _skip_frames(self, data: bytes, pos: int) -> int:
        """Observe's fast path: jump from header to header without cutting pieces.

        The forwarding fast path observes every byte of a WebSocket stream, so this
        loop is what a chat-sized frame costs there (~40 ns, the general path
        takes ~2 us). Returns where a header split by the end of `data` begins,
        or len(data).
        """
        end = len(data)
        if self._remaining:
            if self._remaining >= end - pos:
                self._remaining -= end - pos
                return end
            pos += self._remaining
            self._remaining = 0
        last, short, safe = -1, _SHORT_FRAME, end - MAX_HEADER
        while pos <= safe:  # a whole header is surely here
            last = pos
            step = short[data[pos + 1]]
            if not step:  # 16- or 64-bit payload length
                b1 = data[pos + 1]
                if b1 & 0x7F == 126:
                    step = ((data[pos + 2] << 8) | data[pos + 3]) + 4
                else:
                    step = int.from_bytes(data[pos + 2 : pos + 10], "big") + 10
                if b1 & 0x80:
                    step += 4
            pos += step
        while end - pos >= 2:  # near the end: the header may be cut
            need = _header_length(data[pos : pos + 2])
            if end - pos < need:  # type: ignore[operator]
                break
            last = pos
            pos += need + _payload_length(data[pos : pos + need])  # type: ignore[operator]
        if last >= 0:
            self._opcode = data[last] & 0x0F
        if pos > end:
            self._remaining = pos - end
            return end
        return pos

    def _feed_handshake(self, view: memoryview, pos: int, pieces: list[Piece] | None) -> int:
        seen = len(self._head)
        self._head += bytes(view[pos : pos + MAX_HANDSHAKE])
        cut = self._head.find(b"\r\n\r\n")
        if cut < 0:
            if len(self._head) >= MAX_HANDSHAKE or not self._plausible(self._head):
                self.state = OPAQUE
            _emit(pieces, view, pos, len(view), None, False)
            return len(view)
        used = cut + 4 - seen
        first = self._head.split(b"\r\n", 1)[0]
        ok = first.startswith(b"GET ") if self.upstream else first.split(b" ")[1:2] == [b"101"]
        self.state = FRAMES if ok else OPAQUE
        self._head = b""
        _emit(pieces, view, pos, pos + used, None, ok)
        return pos + used

    def _plausible(self, head: bytes) -> bool:
        prefix = b"GET " if self.upstream else b"HTTP/"
        n = min(len(head), len(prefix))
        return head[:n] == prefix[:n]

    def _feed_frame(self, view: memoryview, pos: int, pieces: list[Piece] | None) -> int:
        start = pos
        if self._remaining == 0 and not self._hdr and len(view) - pos >= 2:
            need = _header_length(bytes(view[pos : pos + 2]))
            if need is not None and len(view) - pos >= need:  # the whole header is here: parse it at once
                hdr = bytes(view[pos : pos + need])
                self._opcode, self._remaining = hdr[0] & 0x0F, _payload_length(hdr)
                pos += need
                return self._take_payload(view, start, pos, pieces)
        if self._remaining == 0 or self._hdr:
            # inside (or at the start of) a header that arrives in pieces
            while pos < len(view):
                self._hdr += bytes(view[pos : pos + 1])
                pos += 1
                need = _header_length(self._hdr)
                if need is not None and len(self._hdr) >= need:
                    self._opcode = self._hdr[0] & 0x0F
                    self._remaining = _payload_length(self._hdr)
                    self._hdr = b""
                    break
                if len(self._hdr) == 1:
                    self._opcode = self._hdr[0] & 0x0F
            if self._hdr:  # header still incomplete: the whole rest belongs to it
                _emit(pieces, view, start, pos, self._opcode, False)
                return pos
        return self._take_payload(view, start, pos, pieces)

    def _take_payload(self, view: memoryview, start: int, pos: int, pieces: list[Piece] | None) -> int:
        take = min(self._remaining, len(view) - pos)
        pos += take
        self._remaining -= take
        _emit(pieces, view, start, pos, self._opcode, self._remaining == 0)
        return pos


def _emit(pieces: list[Piece] | None, view: memoryview, a: int, b: int, opcode: int | None, ends: bool) -> None:
    if pieces is not None:
        pieces.append(Piece(bytes(view[a:b]), opcode, ends))


def _header_length(hdr: bytes) -> int | None:
    if len(hdr) < 2:
        return None
    n = hdr[1] & 0x7F
    extra = 2 if n == 126 else 8 if n == 127 else 0
    return 2 + extra + (4 if hdr[1] & 0x80 else 0)


def _payload_length(hdr: bytes) -> int:
    n = hdr[1] & 0x7F
    if n == 126:
        return struct.unpack("!H", hdr[2:4])[0]
    if n == 127:
        return struct.unpack("!Q", hdr[2:10])[0]
    return n


def close_frame(code: int, reason: str, masked: bool) -> bytes:
    """A complete close frame; frames towards a server must be masked (RFC 6455 §5.3)."""
    payload = struct.pack("!H", code) + reason.encode("utf-8")  # reason checked to fit in 123 bytes
    if not masked:
        return bytes([0x80 | OP_CLOSE, len(payload)]) + payload
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | OP_CLOSE, 0x80 | len(payload)]) + key + body
