"""An asyncio event loop whose clock is virtual: it jumps to the next timer when nothing is ready.

`VirtualClockLoop` is asyncio's own selector loop with two changes: `time()` returns a
virtual clock, and the selector is polled without blocking; when no callback is ready and
no socket has anything to report, the clock jumps to the earliest scheduled timer instead
of sleeping. Everything on the loop (timers, timeouts, `asyncio.sleep`, the libraries'
keepalives) then runs at its true time constants, and CPU time takes no virtual time.

Why not `looptime` (the maintained library for this): it serves functionally, but it
is built for tests with outside I/O and executor threads, and pays for that on every pass
of the loop: a scan of its executor futures (a WeakSet) and `noop_cycles` idle passes
before each jump. A staging day makes about a million jumps (one per heartbeat, timer and
timeout), so those passes cost a fifth more CPU for the same run (same records) with
looptime than with this loop. Here the only peers are
sockets of this same process over loopback, where a write is in the peer's receive queue
before `send` returns, so one non-blocking poll is enough to know that nothing is in flight.
One thing on loopback does take real time: a connect that finds its listener's accept queue
full (a herd of reconnects at one instant) is retried by the kernel a real second later. While
such a connect is pending the loop waits for it in real time instead of jumping, or the
client's open timeout would fire in virtual time and a busy machine would change the run.

Determinism: the clock starts at `START` (not at the machine's monotonic time), so every
timer's `when` is the same float in every run of the same scenario and seed.
"""
from __future__ import annotations

import asyncio
import selectors
import time
from typing import Any

#: where the virtual clock starts: a power of two, so a run's first 12 days share one float exponent
START = float(2 ** 20)
#: how long (real seconds) the loop may have neither a timer nor I/O before it calls itself stuck
IDLE_LIMIT_S = 30.0
#: how long (real seconds) the loop waits for pending connects before it jumps anyway (the
#: kernel retries a dropped handshake after 1 s, then 3 s: a connect still pending after that
#: is not the kernel catching up, and its timeout is the scenario's)
CONNECT_PATIENCE_S = 5.0


def _fd(event: tuple[Any, int]) -> int:
    return event[0].fd


class VirtualClockLoop(asyncio.SelectorEventLoop):
    def __init__(self, start: float = START) -> None:
        super().__init__(selectors.EpollSelector() if hasattr(selectors, "EpollSelector") else None)
        self._virtual_now = start
        self._poll = self._selector.select
        self._selector.select = self._select  # type: ignore[method-assign]
        self.jumps = 0
        self._connecting = 0  # connects the kernel has not finished
        self._waited_since: float | None = None  # real time the loop began waiting for them

    def time(self) -> float:
        return self._virtual_now

    def _sock_connect(self, fut: asyncio.Future, sock: Any, address: Any) -> None:
        super()._sock_connect(fut, sock, address)  # type: ignore[misc]
        if not fut.done():
            self._connecting += 1
            fut.add_done_callback(self._connected)

    def _connected(self, _fut: asyncio.Future) -> None:
        self._connecting -= 1

    def _select(self, timeout: float | None) -> list[tuple[Any, int]]:
        ready = self._poll(0)
        if ready or timeout == 0:
            self._waited_since = None
            # in descriptor order, not the kernel's: two sockets ready at once (a message fanned out
            # to both of a legacy client's sockets) are then read in the same order in every run
            return sorted(ready, key=_fd) if len(ready) > 1 else ready
        if self._connecting:  # the kernel is still at it: wait in real time, not in scenario time
            now = time.monotonic()
            self._waited_since = self._waited_since or now
            if now - self._waited_since < CONNECT_PATIENCE_S:
                return self._poll(0.05)
        self._waited_since = None
        if not self._scheduled:  # nothing to jump to: only I/O from outside can go on
            ready = self._poll(IDLE_LIMIT_S)
            if not ready:
                raise RuntimeError(f"virtual clock: no timer and no I/O for {IDLE_LIMIT_S:g} s; the run is stuck")
            return ready
        when = self._scheduled[0]._when
        if when > self._virtual_now:
            self._virtual_now = when
            self.jumps += 1
        return []
