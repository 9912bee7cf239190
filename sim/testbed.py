"""The emulation's load generator in the model: CPUs shared by the server, the client workers and
the fault proxy (`sim.calibration.Testbed`), used by `stormbench validate` only.

On the emulating machine a mass expiry's herd is not served at the server's pace: the client
workers and the proxy spend CPU on every request before the server sees it, on the same cores
the server needs. Measured on a 200-client herd at x30 here, the server waited for a CPU about as
long as it ran, both cores busy. The model therefore gives every fleet request a testbed stage on
`cores` shared slots, and makes the server's own slots need one of those cores too: N requests of
testbed cost s on c idle cores take N·s/c, and a server that could serve faster waits for a core.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from sim.server import draw_stream, Slots

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from sim.calibration import Testbed
    from sim.schedule import ModelEnvironment


class OnCores:
    """The server's `slots` (its threads), each holder also needing one of `cores` before its
    service time runs, as a runnable thread waits for a CPU. `serve` as `Slots.serve`."""

    __slots__ = ("slots", "cores")

    def __init__(self, slots: Slots, cores: Slots) -> None:
        self.slots, self.cores = slots, cores

    def serve(self, service: Callable[[], float], fn: Callable[..., None], *args: Any) -> None:
        self.slots.acquire(self.cores.serve, service, self._served, fn, args)

    def _served(self, fn: Callable[..., None], args: tuple) -> None:
        """The core is free again (`cores.serve` freed it): free the thread, then carry on."""
        self.slots.release()
        fn(*args)

    @property
    def busy(self) -> int:
        return self.slots.busy

    @property
    def queued(self) -> int:
        return self.slots.queued


class TestbedModel:
    """`cores` CPUs; `request(cost, fn, *args)` spends one request's testbed CPU (a draw of `token`
    or `connect`), then calls fn(*args): the request reaches the server."""

    def __init__(self, env: "ModelEnvironment", testbed: "Testbed", rng: "np.random.Generator") -> None:
        self.env = env
        self.cores = Slots(env, testbed.cores)
        self.token = draw_stream(testbed.token_cost, rng)
        self.connect = draw_stream(testbed.connect_cost, rng)

    def request(self, cost: Callable[[], float], fn: Callable[..., Any], *args: Any) -> None:
        self.cores.serve(cost, fn, *args)

    def on_cores(self, slots: Slots) -> OnCores:
        return OnCores(slots, self.cores)
