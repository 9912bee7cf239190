"""The model's clock: SimPy's environment, with plain scheduled calls as its common event.

The model needs no generator per client or socket (a fleet has hundreds of thousands); nearly
every event is "call this function then". A `Timeout` plus a closure per such call cost a third
of a large run's time, and SimPy's `step` another fifth (a callbacks list per event, a failure
check, one `run` iteration per event through an exception-driven loop). `ModelEnvironment`
keeps SimPy's queue, clock and ordering (time, then priority, then insertion) and runs its own
call entries directly (no object per call); any ordinary SimPy event in the queue still goes
through SimPy's own `step`, so processes and resources keep working where a model needs them.

A fleet's pending calls number in the hundreds of thousands (each client's next drop, offline
period and timers, each socket's checks), and a heap that size lives outside the CPU's caches:
every push and pop walks twenty levels of entries scattered in memory, which made a large fleet
cost several times more per event than a small one. So a call due beyond the current window of
`WINDOW_S` seconds waits in that window's list (a calendar queue's bucket, appended to in
order) and joins the heap when the clock gets there: the heap holds the next seconds' entries
only. The order is unchanged: an entry keeps its (time, priority, serial) key, and every entry
due before the end of the merged windows is in the heap before anything at or after it runs.
"""
from __future__ import annotations

from heapq import heappop, heappush
from typing import Any, Callable

import simpy
from simpy.core import Infinity
from simpy.events import NORMAL, URGENT, Event

WINDOW_S = 16.0  # a power of two, so window boundaries and `t // WINDOW_S` are exact


class ModelEnvironment(simpy.Environment):
    def __init__(self, initial_time: float = 0) -> None:
        super().__init__(initial_time)
        self._later: dict[int, list[tuple]] = {}  # window index -> call entries due in it, not yet in the heap
        self._window = int(self._now // WINDOW_S) + 1  # the first window not yet merged into the heap
        self._horizon = self._window * WINDOW_S  # every entry due before this is in the heap

    def call_in(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        """Call fn(*args) `delay` simulated seconds from now (at once for a delay <= 0, after the
        calls already due now), at NORMAL priority as a SimPy `Timeout` would fire. The entry is
        SimPy's (time, priority, serial, ...) with the call in place of an event: five fields, where
        SimPy's own entries have four (the serial is unique, so nothing past it is ever compared)."""
        at = self._now + (delay if delay > 0.0 else 0.0)
        entry = (at, NORMAL, next(self._eid), fn, args)
        if at < self._horizon or at == Infinity:
            heappush(self._queue, entry)
            return
        window = int(at // WINDOW_S)
        bucket = self._later.get(window)
        if bucket is None:
            self._later[window] = [entry]
        else:
            bucket.append(entry)

    def _merge(self) -> None:
        """The next window's calls join the heap."""
        bucket = self._later.pop(self._window, None)
        self._window += 1
        self._horizon = self._window * WINDOW_S
        if bucket:
            queue = self._queue
            for entry in bucket:
                heappush(queue, entry)

    def _fill(self, until: float = Infinity) -> None:
        """Merge windows until the heap's first entry is the earliest of all (or the windows left
        start after `until`)."""
        queue, later = self._queue, self._later
        while later and self._horizon <= until and (not queue or queue[0][0] >= self._horizon):
            self._merge()

    def peek(self) -> float:
        self._fill()
        return super().peek()

    def step(self) -> None:
        self._fill()
        queue = self._queue
        if queue and len(queue[0]) == 5:
            self._now, _, _, fn, args = heappop(queue)
            fn(*args)
        else:
            super().step()

    def run(self, until: float | Event | None = None) -> Any:
        """As `simpy.Environment.run`; a numeric `until` stops exactly where SimPy's would (its
        URGENT stop event, which takes the next insertion number, precedes NORMAL events due
        then), in a loop that runs plain calls without a `step` call each."""
        if until is None or isinstance(until, Event):
            return super().run(until)
        at = float(until)
        if at <= self._now:
            raise ValueError(f"until ({at}) must be greater than the current simulation time")
        stop = (URGENT, next(self._eid))
        queue, later = self._queue, self._later
        step = super().step
        while True:
            if later and self._horizon <= at and (not queue or queue[0][0] >= self._horizon):
                self._merge()
                continue
            if not queue:
                break
            entry = queue[0]
            t = entry[0]
            if t > at or (t == at and (entry[1], entry[2]) > stop):
                break
            if len(entry) == 5:
                heappop(queue)
                self._now = t
                entry[3](*entry[4])
            else:
                step()
        self._now = at
        if not later and self._horizon <= at:  # an idle stretch: the window catches up with the clock
            self._window = int(at // WINDOW_S) + 1
            self._horizon = self._window * WINDOW_S
        return None
