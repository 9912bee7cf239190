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

Determinism: the clock starts at `START` (not at the machine's monotonic time), so every
timer's `when` is the same float in every run of the same scenario and seed.
"""
from __future__ import annotations

import asyncio
import selectors
from typing import Any

#: where the virtual clock starts: a power of two, so a run's first 12 days share one float exponent
START = float(2 ** 20)
#: how long (real seconds) the loop may have neither a timer nor I/O before it calls itself stuck
IDLE_LIMIT_S = 30.0


class VirtualClockLoop(asyncio.SelectorEventLoop):
    def __init__(self, start: float = START) -> None:
        super().__init__(selectors.EpollSelector() if hasattr(selectors, "EpollSelector") else None)
        self._virtual_now = start
        self._poll = self._selector.select
        self._selector.select = self._select  # type: ignore[method-assign]
        self.jumps = 0

    def time(self) -> float:
        return self._virtual_now

    def _select(self, timeout: float | None) -> list[tuple[Any, int]]:
        ready = self._poll(0)
        if ready or timeout == 0:
            return ready
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
