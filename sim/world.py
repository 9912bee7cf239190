"""One simulated run: the fleet, the server, the token service, the weather and the fault timeline.

Every random draw that the emulation also makes (arrivals, drops, offline periods, message times,
fault targets, spike arrivals, each policy's rng) comes from the one plan of draws
(`formats.scenario.plan.draw_plan`), so the model and the emulation of one scenario and seed face
the same weather; the model's own draws (service times,
heartbeat phases, agent latency) come from named numpy streams of the same seed.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain, islice
from typing import Any, Callable, Iterator, TypeVar


from formats.scenario import draws
from formats.scenario.clients import client_config
from formats.scenario.model import Fault, Scenario
from formats.scenario.plan import Lifetime, draw_plan
from sim import faults as fault_kinds
from sim.calibration import Calibration, Testbed
from sim.client import SimClient
from sim.schedule import ModelEnvironment
from formats.scenario.server import server_profile
from sim.server import draw_stream, ModelServer, TokenService
from system.server.lifecycle import EXPIRY_GRACE_S
from sim.testbed import TestbedModel
from system.client.policy import ClientPolicy

T = TypeVar("T")

# "sent": what the message sample typed, for the user-message ledger (only those clients type)
# "backoff": the law of a jittered delay, which a weighted agent's clients draw theirs from (derive);
# "arrival": likewise the law of a client's arrival (on the ramp, or in a load spike)
TALLIED = frozenset({"attempt", "give_up", "open", "close", "handshake_failed", "stop", "displayed", "sent",
                     "backoff", "arrival"})


@dataclass(frozen=True)
class ModelOptions:
    """How much of the fleet the model follows in detail.

    `message_clients`: clients whose chat messages are simulated one by one (the ledger is
    measured on them and scaled to the fleet); messages never feed back into connection
    dynamics, so a sample measures the loss and duplicate rates without paying for them all.
    `keep_all_records`: keep every record (for events.jsonl) instead of only those the derived
    tables need.
    `calm_batches`: off, every refresh is a timer and a queued token request (the plain model the
    calm path is checked against).
    """

    message_clients: int | None = None  # None: every client
    keep_all_records: bool = True
    calm_batches: bool = True  # calm clients' refreshes played in batches (sim.client.SimClient.wake)


class World:
    def __init__(self, scenario: Scenario, calibration: Calibration, *, clients: int | None = None,
                 options: ModelOptions = ModelOptions(),
                 sink: Callable[[list[dict]], None] | None = None,
                 on_sent: Callable[[str, str, int, float], None] | None = None,
                 expiry_grace: float = EXPIRY_GRACE_S, testbed: "Testbed | None" = None, weight: int = 1) -> None:
        self.scenario = scenario
        self.cal = calibration
        self.options = options
        self.duration = scenario.duration
        self.n = scenario.fleet.sim_clients if clients is None else clients
        self.env = ModelEnvironment()
        seed = scenario.seed
        profile = server_profile(scenario, expiry_grace)
        self.tokens = TokenService(self.env, profile,
                                   draw_stream(calibration.token_latency, draws.numpy_stream(seed, "sim:token")), weight,
                                   calibration.handshake_servers)
        self.server = ModelServer(self.env, profile, calibration,
                                  draws.numpy_stream(seed, "sim:server"), self.tokens, on_sent, weight)
        self.testbed: TestbedModel | None = None
        if testbed is not None:  # validate: the emulation's load generator shares the server's CPUs
            self.testbed = TestbedModel(self.env, testbed, draws.numpy_stream(seed, "sim:testbed"))
            self.server.handshake = self.testbed.on_cores(self.server.handshake)
        self.tokens.served_by(lambda: self.server.up, calibration.refused_after_s)
        if calibration.token_service is not None:  # one server process: refreshes queue with handshakes
            self.tokens.serve_on(self.server.handshake,
                                 draw_stream(calibration.token_service, draws.numpy_stream(seed, "sim:token-service")),
                                 calibration.connect_timeout_s)
        self.config = client_config(scenario)
        self.records: list[dict] = []
        self._sink = sink
        self.fault_log: list[dict] = []
        self.policy_events = 0  # events fed to client policies: the model's unit of work
        # faults in force: no client is calm meanwhile (sim.faults.schedule); a plain model holds one
        self.faults_holding = 0 if options.calm_batches else 1
        self.clients: list[SimClient] = []
        self.by_id: dict[str, SimClient] = {}
        self.plan = draw_plan(scenario, self.n)
        self.realized = self.plan.faults
        self._record_kinds = None if options.keep_all_records else TALLIED
        self._message_limit = self.n if options.message_clients is None else min(self.n, options.message_clients)

    # ---- records -----------------------------------------------------------------------
    def tally(self, records: list[dict]) -> None:
        """Records of the policies (which make only `_record_kinds`) and of the world ("stop")."""
        if self._sink is not None:
            self._sink(records)
        else:
            self.records.extend(records)

    # ---- the fleet ---------------------------------------------------------------------
    def add_client(self, life: Lifetime) -> SimClient:
        cid = life.client_id
        policy = ClientPolicy(self.config, self.plan.rng(life), cid, conversation=cid, record_kinds=self._record_kinds)
        c = SimClient(self, life.index, cid, policy)
        self.clients.append(c)
        self.by_id[cid] = c
        self.env.call_in(life.start - self.env.now, c.start)
        if life.stop < self.duration:
            self.env.call_in(life.stop - self.env.now, self._stop, c)
        self._weather(c, life)
        return c

    def _stop(self, c: SimClient) -> None:
        self.tally([{"t": self.env.now, "client": c.client_id, "kind": "stop"}])
        c.stop()

    def _weather(self, c: SimClient, life: Lifetime) -> None:
        sc, plan = self.scenario, self.plan
        if sc.fleet.drop_every is not None:
            self._chain(_compact(plan.drops(life)), lambda _t: c.drop())
        if sc.fleet.offline is not None:
            self._chain_offline(c, _compact(plan.offline(life)))
        if sc.fleet.message_every is not None and c.index < self._message_limit:
            from system.client.events import UserMessage
            self._chain(plan.messages(life),
                        lambda t: c.feed(UserMessage(self.env.now, "any 2-bedroom flats to rent in Camden under 2000 a month?")))

    def _chain(self, times: Iterator[float], fn: Callable[[float], Any]) -> None:
        """Schedule the next event of a lazily drawn series (a fleet has millions of them), one at a
        time, through methods rather than closures that call each other: those would make a reference
        cycle per series, left for the cyclic collector, which is off while a model runs (`no_cyclic_collection`)."""
        t = next(times, None)
        if t is not None:
            self.env.call_in(t - self.env.now, self._step, times, fn)

    def _step(self, times: Iterator[float], fn: Callable[[float], Any]) -> None:
        fn(self.env.now)
        self._chain(times, fn)

    def _chain_offline(self, c: SimClient, periods: Iterator[tuple[float, float]]) -> None:
        p = next(periods, None)
        if p is not None:
            self.env.call_in(p[0] - self.env.now, c.go_offline)
            self.env.call_in(p[1] - self.env.now, self._back_online, c, periods)

    def _back_online(self, c: SimClient, periods: Iterator[tuple[float, float]]) -> None:
        c.go_online()
        self._chain_offline(c, periods)

    def spike(self, f: Fault) -> None:
        """A load spike: its clients (from the plan, scaled to this fleet) arrive from now."""
        index = next(i for i, g in enumerate(self.scenario.faults) if g is f)
        self._arrive(self.plan.spike(index))

    def _arrive(self, lives: list[Lifetime]) -> None:
        """Add these clients; at fleet scale (where an agent may stand for several clients) tally
        the law each one's arrival was drawn from (the ramp's, or a spike's), which
        `formats.record.derive` spreads an agent's clients over."""
        tallied = self._record_kinds is not None and "arrival" in self._record_kinds
        arrivals = []
        for life in lives:
            self.add_client(life)
            if tallied and life.spread > 0:
                arrivals.append({"t": self.env.now, "client": life.client_id, "kind": "arrival",
                                 "delay": life.start - life.origin, "jitter": [0.0, life.spread, life.spread]})
        if arrivals:
            self.tally(arrivals)

    def wake_all(self) -> None:
        """Bring every calm client up to now (before a fault changes what a refresh would meet)."""
        for c in self.clients:
            if c.calm is not None:
                c.wake()

    def rest_all(self) -> None:
        """The last fault in force is lifted: every client calm again rests now, rather than at its
        next event (most often its next refresh, which would otherwise be played in full, queue and
        all, by each client of the fleet after every fault)."""
        for c in self.clients:
            if c.calm is None:
                c.settle()

    # ---- running -----------------------------------------------------------------------
    def build(self) -> None:
        self._arrive([life for life in self.plan.lifetimes if not life.spike])
        for i, (f, r) in enumerate(zip(self.scenario.faults, self.realized)):
            targets = self.clients if r.targets is None else [self.by_id[t] for t in r.targets]
            fault_kinds.schedule(self, i, f, targets)

    def scrape(self, sink: Callable[[float, list[dict]], None], weight: int, message_scale: float) -> None:
        """Periodic scrapes of the modelled server, scaled from agents to the fleet."""
        from sim import scrapes

        def sample(now: float) -> None:
            sink(now, [{"name": "ws_connections_active", "labels": {}, "value": self.server.active * weight},
                       *self.server.agent_seconds.samples(message_scale)])

        scrapes.every(self.env, self.duration, sample)

    def run(self, progress: Callable[[float], None] | None = None, *, max_wall_s: float | None = None,
            steps: int = 96) -> float:
        """Run to the scenario's end, or stop early after `max_wall_s` of wall time (a bounded run);
        returns the scenario time reached."""
        with no_cyclic_collection():
            return self._run(progress, max_wall_s, steps)

    def _run(self, progress: Callable[[float], None] | None, max_wall_s: float | None, steps: int) -> float:
        import time

        self.build()
        deadline = None if max_wall_s is None else time.perf_counter() + max_wall_s
        if progress is None and deadline is None:
            self.env.run(until=self.duration)
            self.wake_all()
            return self.duration
        for k in range(1, steps + 1):
            self.env.run(until=self.duration * k / steps)
            if progress is not None:
                progress(k / steps)
            if deadline is not None and time.perf_counter() > deadline and k < steps:
                self.wake_all()
                return self.env.now
        self.wake_all()
        return self.duration


def _compact(series: Iterator[T], ahead: int = 16) -> Iterator[T]:
    """A lazily drawn series, its draws made now when it has few: a series holds its own seeded
    generator (a Mersenne Twister's state, kilobytes) until its last draw, while a client's day
    usually has a handful of drops and offline periods, which take less room than the generator
    that draws them (the draws are the same either way)."""
    head = list(islice(series, ahead))
    return iter(head) if len(head) < ahead else chain(head, series)


@contextmanager
def no_cyclic_collection() -> Iterator[None]:
    """A fleet holds millions of long-lived objects (policies, sockets, pending calls). CPython's
    cyclic collector runs every few tens of thousands of allocations, and even a young collection
    follows each young object's references into that old heap (cache misses all the way): at
    100,000 clients it cost about as much as the fault periods' own work, more the larger the
    fleet. The model makes no reference cycles (tests/sim/test_gc.py checks that a run leaves next
    to nothing for the collector), so reference counting frees all it makes, and the collector
    is off while it runs and back on afterwards (as it was). A caller that then drops the model
    keeps it off until its own collection of the model's cycles (`sim.engine.simulate`): turned on
    with the live model, it would first walk all of it for nothing."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
