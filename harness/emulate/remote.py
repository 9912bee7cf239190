"""The client fleet on a Dask cluster's workers: `run SCENARIO --target URL --cluster tcp://...`.

One machine's cores bound how many real clients it can drive at a given time scale; a user with
more machines runs a Dask scheduler and workers there. `RemoteFleet` is `fleet.Fleet` with its
workers placed on the cluster instead of spawned here: one fleet worker per Dask worker (pinned to
it), each running its share of the plan with the very same `fleet._run` loop, so records are the
same as a local worker's. Dask carries everything (no home-made RPC): the spec and the result go
as a `cluster.executor.execute` job (the worker's events file comes back in the job's tar), tallies
and readiness through a `distributed.Queue`, the start through an `Event` and a `Variable`, and
the stop (Ctrl-C, a deadline) through another `Event`.

Clocks: the fleet's origin is a unix time on this machine's clock. Before the start the client
measures each worker's clock offset (`distributed.Client.run(time.time)` a few times; the offset
of the fastest round trip, the midpoint rule of NTP) and hands each worker the origin on its own
clock, so its records come out on this machine's time base like a local worker's; each worker's
offset and its uncertainty (half that round trip) are in its `self_check` entry with its host.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from pathlib import Path
from typing import Any

from harness.emulate.fleet import Shares, WorkerSpec, _run, split

READY_TIMEOUT_S = 60.0
OFFSET_SAMPLES = 5
STOP_POLL_S = 0.5  # how often a worker looks at the stop event


class _Outbox:
    """A worker's reports onto a `distributed.Queue` from one background thread: a put is a round
    trip to the scheduler, which must not stall the clients' event loop (its lag is measured)."""

    def __init__(self, queue: Any) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.queue = queue
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="stormbench-outbox")

    def put(self, item: tuple) -> None:
        self.pool.submit(self.queue.put, item)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def remote_worker(out: Path, spec: WorkerSpec, run_id: str) -> dict:
    """On a Dask worker (a `cluster.executor` job): announce, wait for the origin, run the share
    until its end or the stop event, return the result; the events file is in `out`."""
    from distributed import Event, Queue, Variable, get_worker

    import system.client.driver  # noqa: F401  (pay the import before the clock starts)

    out.mkdir(parents=True, exist_ok=True)
    spec = dataclasses.replace(spec, events_path=out / "events.jsonl")
    outbox = _Outbox(Queue(f"{run_id}-reports"))
    try:
        worker = get_worker()
        outbox.put(("ready", spec.index, {"address": worker.address, "host": worker.ip}))
        if not Event(f"{run_id}-go").wait(READY_TIMEOUT_S):
            raise RuntimeError(f"no start within {READY_TIMEOUT_S:.0f}s")
        start = Variable(f"{run_id}-origin").get(timeout=READY_TIMEOUT_S)
        origin = start["origin"] + start["offsets"][str(spec.index)]
        result = asyncio.run(_until_stopped(spec, origin, outbox, Event(f"{run_id}-stop")))
        result["self_check"].update({"host": worker.ip, "address": worker.address,
                                     **start["clocks"][str(spec.index)]})
        return result
    finally:
        outbox.close()


async def _until_stopped(spec: WorkerSpec, origin: float, outbox: _Outbox, stop: Any) -> dict:
    """`fleet._run`, cancelled when `stop` is set (its records are written either way)."""
    main = asyncio.ensure_future(_run(spec, origin, None, outbox))
    while not main.done():
        if await asyncio.to_thread(stop.wait, STOP_POLL_S):
            main.cancel()
            break
    try:
        return await main
    except asyncio.CancelledError:
        from harness.emulate.selfcheck import LoopLagMonitor, ResourceSampler, worker_report

        return {"self_check": worker_report(LoopLagMonitor(), ResourceSampler()), "clients": len(spec.clients),
                "interrupted": True, "client_errors": [], "client_error_count": 0}


def clock_offset(client: Any, address: str, samples: int = OFFSET_SAMPLES) -> dict:
    """The worker's clock minus this one's, from the sample with the shortest round trip."""
    best = None
    for _ in range(samples):
        t0 = time.time()
        theirs = client.run(time.time, workers=[address])[address]
        t1 = time.time()
        if best is None or t1 - t0 < best[0]:
            best = (t1 - t0, theirs - (t0 + t1) / 2)
    return {"clock_offset_s": round(best[1], 6), "clock_offset_uncertainty_s": round(best[0] / 2, 6)}


class RemoteFleet(Shares):
    """The parent's side, as `fleet.Fleet`: start (place and wait for ready), go, poll, join, stop."""

    start_lead_s = 1.0  # from `go` to the origin: the start goes through the scheduler to every worker

    def __init__(self, specs: list[WorkerSpec], cluster: str, tmp: Path) -> None:
        from contextlib import ExitStack

        from cluster.executor import connect

        self.cluster, self.tmp = cluster, tmp
        self.run_id = f"stormbench-fleet-{uuid.uuid4().hex}"
        self.stack = ExitStack()
        self.client = self.stack.enter_context(connect(cluster))
        addresses = sorted(self.client.scheduler_info(n_workers=-1)["workers"])
        clients = [c for s in specs for c in s.clients]
        # each spec holds its own share's secrets and conversations: the new shares take theirs from all
        secrets = {cid: v for s in specs for cid, v in s.secrets.items()}
        conversations = {cid: v for s in specs for cid, v in s.conversations.items()}
        n = max(1, min(len(addresses), len(clients)))
        self.specs = [dataclasses.replace(specs[0], index=i, clients=share, events_path=tmp / f"remote-{i}" / "events.jsonl",
                                          secrets={c.client_id: secrets[c.client_id] for c in share},
                                          conversations={c.client_id: conversations[c.client_id] for c in share})
                      for i, share in enumerate(split(clients, n))]
        self.addresses = addresses[:n]
        self.procs: list[Any] = []  # nothing of this machine's: the CPU share counts only local processes
        self.tallies: dict[int, dict] = {}
        self.results: dict[int, dict] = {}
        self.failures: dict[int, str] = {}
        self.clocks: dict[int, dict] = {}
        self.futures: dict[int, Any] = {}

    def start(self, ready_timeout: float = READY_TIMEOUT_S) -> None:
        from distributed import Queue

        from cluster.executor import execute

        self.reports = Queue(f"{self.run_id}-reports", client=self.client)
        for spec, address in zip(self.specs, self.addresses):
            self.futures[spec.index] = self.client.submit(
                execute, remote_worker, (spec, self.run_id), {}, True, pure=False, workers=[address],
                allow_other_workers=False, key=f"{self.run_id}-{spec.index}")
        ready: dict[int, dict] = {}
        deadline = time.monotonic() + ready_timeout
        while len(ready) < len(self.specs):
            self._collect()
            if self.failures:
                raise RuntimeError("fleet worker(s) failed while starting: " +
                                   "; ".join(f"{i}: {why}" for i, why in sorted(self.failures.items())))
            if time.monotonic() > deadline:
                raise RuntimeError(f"fleet workers not ready within {ready_timeout:.0f}s "
                                   f"({len(ready)}/{len(self.specs)} ready)")
            for kind, index, payload in self._take(timeout=0.5):
                if kind == "ready":
                    ready[index] = payload
        self.clocks = {i: {**clock_offset(self.client, ready[i]["address"]), "host": ready[i]["host"]}
                       for i in ready}

    def go(self, origin_unix: float) -> None:
        from distributed import Event, Variable

        Variable(f"{self.run_id}-origin", client=self.client).set({
            "origin": origin_unix,
            "offsets": {str(i): c["clock_offset_s"] for i, c in self.clocks.items()},
            "clocks": {str(i): {k: v for k, v in c.items() if k != "host"} for i, c in self.clocks.items()}})
        Event(f"{self.run_id}-go", client=self.client).set()

    def _take(self, timeout: float) -> list[tuple]:
        try:
            first = self.reports.get(timeout=timeout)
        except (TimeoutError, asyncio.TimeoutError):
            return []
        return [first, *self.reports.get(batch=True)]

    def _collect(self) -> None:
        """Take in the results of the workers that ended: their events files land in `tmp`."""
        from cluster.executor import unpack

        for index, future in list(self.futures.items()):
            if not future.done():
                continue
            del self.futures[index]
            if future.status == "finished":
                value, packed = future.result()
                unpack(packed, self.specs[index].events_path.parent)
                self.results[index] = value
            else:
                exc = future.exception()
                self.failures[index] = f"on {self.addresses[index]}: {type(exc).__name__}: {exc}"

    def poll(self, timeout: float = 0.0) -> None:
        for kind, index, payload in self._take(timeout):
            if kind == "tally":
                self.tallies[index] = payload
        self._collect()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.finished and time.monotonic() < deadline:
            self.poll(timeout=0.5)
        self.stop()

    def interrupt(self) -> None:
        from distributed import Event

        if self.futures:  # some worker still runs
            Event(f"{self.run_id}-stop", client=self.client).set()

    def stop(self) -> None:
        """Late workers are told to stop, and their records still come back (within a deadline)."""
        if not self.finished:
            self.interrupt()
            deadline = time.monotonic() + 10.0 + STOP_POLL_S
            while not self.finished and time.monotonic() < deadline:
                self.poll(timeout=0.5)
            for index in list(self.futures):
                self.futures.pop(index).cancel()
                self.failures.setdefault(index, "no result before the deadline")
        self.stack.close()
