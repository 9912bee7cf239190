"""The model's clock: SimPy's environment, with plain scheduled calls as its common event.

The model needs no generator per client or socket (a fleet has hundreds of thousands); nearly
every event is "call this function then". A `Timeout` plus a closure per such call cost a third
of a large run's time, and SimPy's `step` another fifth (a callbacks list per event, a failure
check, one `run` iteration per event through an exception-driven loop). `ModelEnvironment`
keeps SimPy's queue, clock and ordering (time, then priority, then insertion) and runs its own
call entries directly (no object per call); any ordinary SimPy event in the queue still goes
through SimPy's own `step`, so processes and resources keep working where a model needs them.
"""
from __future__ import annotations

from heapq import heappop, heappush
from typing import Any, Callable

import simpy
from simpy.events import NORMAL, URGENT, Event


class ModelEnvironment(simpy.Environment):
    def call_in(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        """Call fn(*args) `delay` simulated seconds from now (at once for a delay <= 0, after the
        calls already due now), at NORMAL priority as a SimPy `Timeout` would fire. The entry is
        SimPy's (time, priority, serial, ...) with the call in place of an event: five fields, where
        SimPy's own entries have four (the serial is unique, so nothing past it is ever compared)."""
        heappush(self._queue, (self._now + (delay if delay > 0.0 else 0.0), NORMAL, next(self._eid), fn, args))

    def step(self) -> None:
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
        queue = self._queue
        step = super().step
        while queue:
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
        return None
