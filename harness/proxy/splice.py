"""Zero-copy forwarding for a bulk link with no toxic: kernel splice in a thread of its own.

Why: on loopback almost all of a forwarder's CPU is the kernel's copying and TCP
work; `splice(2)` moves a socket's bytes to another socket through a pipe
without copying them into user space, and it releases the GIL, so a thread per
direction forwards while the event loop keeps serving the other connections and
the API. tests/bench/bench_proxy.py measured it against the asyncio path: the
forwarder spends ~300 instead of ~500 ms of CPU per GB.

It is only worth a thread for a bulk stream, so `Link` starts one only for a
non-WebSocket stream whose reads come in large (>= `BULK_READ`) and only up to
`MAX_SPLICERS` at once; chat traffic (WebSocket frames, which the proxy must
track) never leaves the event loop. `stop()` hands the link back: the thread
leaves its syscall, and the bytes still in the pipe are returned to go first
into the toxic chain, so switching loses and reorders nothing.

The thread works on duplicates of the two sockets' descriptors: a transport
that closes its socket while the thread runs can never leave it on a descriptor
number reused by another connection; the socket itself closes once both are gone.
"""
from __future__ import annotations

import asyncio
import fcntl
import os
import select
import threading
from typing import Callable

AVAILABLE = hasattr(os, "splice") and hasattr(fcntl, "F_SETPIPE_SZ")
PIPE_SIZE = 1 << 20  # bytes moved per splice; above /proc/sys/fs/pipe-max-size the default pipe is kept
BULK_READ = 64 * 1024  # a read this large means the source had a backlog: a bulk stream
MAX_SPLICERS = 32  # threads at once per process; further bulk links stay on the event loop
JOIN_TIMEOUT = 5.0  # seconds; the thread only ever waits in poll(), which the wake pipe ends

# why the thread ended, reported to the event loop
SOURCE_EOF, SOURCE_ERROR, DESTINATION_ERROR = "source_eof", "source_error", "destination_error"

_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_MORE", 4) | getattr(os, "SPLICE_F_NONBLOCK", 2)


class Splicer:
    """Forwards `src` to `dst` (descriptors of non-blocking sockets) until stopped or the source ends.

    Counts `received` and `sent` (written by the thread only); `on_end(reason)` runs on the event
    loop when the thread ends by itself. `live` is how many splicers run in this process.
    """

    live = 0

    def __init__(self, src: int, dst: int, loop: asyncio.AbstractEventLoop, on_end: Callable[[str], None]) -> None:
        self.received = self.sent = 0
        self._loop, self._on_end = loop, on_end
        self._stopping = False
        self._fds: list[int] = []
        try:
            self._src, self._dst = self._keep(os.dup(src)), self._keep(os.dup(dst))
            self._out, self._into = (self._keep(fd) for fd in os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC))
            self._wake_out, self._wake_in = (self._keep(fd) for fd in os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC))
        except OSError:
            self._close_fds()
            raise
        try:
            fcntl.fcntl(self._into, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass  # the default pipe (64 KiB) works, only with more syscalls
        self._chunk = fcntl.fcntl(self._into, fcntl.F_GETPIPE_SZ)
        self._thread = threading.Thread(target=self._run, name="proxy-splice", daemon=True)
        Splicer.live += 1
        self._thread.start()

    def _keep(self, fd: int) -> int:
        self._fds.append(fd)
        return fd

    def stop(self) -> bytes:
        """End the thread and return the bytes it had read but not yet written, in order."""
        if not self._fds:
            return b""
        self._stopping = True
        try:
            os.write(self._wake_in, b"x")
        except OSError:
            pass  # the wake pipe is full: the thread is being woken already
        self._thread.join(JOIN_TIMEOUT)
        left = bytearray()
        if not self._thread.is_alive():
            while True:
                try:
                    piece = os.read(self._out, self._chunk)
                except BlockingIOError:
                    break
                if not piece:
                    break
                left += piece
        self._close_fds()
        Splicer.live -= 1
        return bytes(left)

    def _close_fds(self) -> None:
        fds, self._fds = self._fds, []
        for fd in fds:
            os.close(fd)

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            reason = self._pump()
        except Exception:  # noqa: BLE001 - any failure ends forwarding the way a reset would
            reason = SOURCE_ERROR
        if reason is not None and not self._stopping:
            try:
                self._loop.call_soon_threadsafe(self._on_end, reason)
            except RuntimeError:
                pass  # the loop has closed: the process is exiting

    def _pump(self) -> str | None:
        """Splice until the source ends (its reason) or `stop()` (None)."""
        pending = 0  # bytes in the pipe
        readable, writable = select.poll(), select.poll()
        for poller, fd, event in ((readable, self._src, select.POLLIN), (writable, self._dst, select.POLLOUT)):
            poller.register(fd, event)
            poller.register(self._wake_out, select.POLLIN)
        while not self._stopping:
            if pending:
                try:
                    n = os.splice(self._out, self._dst, pending, flags=_FLAGS)
                except BlockingIOError:
                    writable.poll()
                    continue
                except OSError:
                    return DESTINATION_ERROR
                pending -= n
                self.sent += n
                continue
            try:
                n = os.splice(self._src, self._into, self._chunk, flags=_FLAGS)
            except BlockingIOError:
                readable.poll()
                continue
            except OSError:
                return SOURCE_ERROR
            if n == 0:
                return SOURCE_EOF
            pending = n
            self.received += n
        return None
