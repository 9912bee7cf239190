"""A WebSocket client that never answers: websockets' sans-IO client protocol over a plain socket
with a small receive buffer. It either never reads (the server's send buffer is what fills up) or
reads everything and never writes what its protocol queues in reply: no pong, no close reply."""
from __future__ import annotations

import json
import socket

from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri


class DeafClient:
    """Connects, reads the handshake response, then only writes."""

    def __init__(self, ws_url: str, path: str, rcvbuf: int = 4096) -> None:
        self.protocol = ClientProtocol(parse_uri(ws_url + path))
        host, port = ws_url.removeprefix("ws://").split(":")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(5)
        self.sock.connect((host, int(port)))
        self.protocol.send_request(self.protocol.connect())
        self._flush()
        while not any(isinstance(e, Response) for e in self.protocol.events_received()):
            self.protocol.receive_data(self.sock.recv(1))  # byte by byte: leave the frames unread
        if self.protocol.handshake_exc is not None:
            raise self.protocol.handshake_exc

    def send(self, frame: dict) -> None:
        self.protocol.send_text(json.dumps(frame).encode())
        self._flush()

    def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.sock.sendall(data)

    def read_until_closed(self, timeout: float) -> tuple[Close | None, int]:
        """Read until the server ends the connection, answering nothing: (the close frame the
        server sent, or None; how many pings it sent)."""
        self.sock.settimeout(timeout)
        pings = 0
        try:
            while chunk := self.sock.recv(1 << 16):
                self.protocol.receive_data(chunk)
                pings += sum(isinstance(e, Frame) and e.opcode is Opcode.PING
                             for e in self.protocol.events_received())
        except ConnectionResetError:
            pass
        return self.protocol.close_rcvd, pings

    def closed_by_server(self) -> bool:
        """True once the server has closed the TCP connection (reads whatever is left)."""
        self.sock.settimeout(0.5)
        try:
            while chunk := self.sock.recv(1 << 20):
                del chunk
            return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()
