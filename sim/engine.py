"""`simulate(scenario, out_dir)`: the model's run record, the same files the emulation writes.

Two sizes, one model:
- up to `EXACT_LIMIT` clients every record goes to `events.jsonl` (and the delivery log to
  `sent.csv`), and `formats.record.finalize` derives the tables exactly as for an emulation;
- above it, the engine derives `connections.csv` and `timeseries.csv` itself with the same
  `formats.record.derive` code, from the records those tables need, and measures the ledger on
  a sample of clients (`ledger_summary.json`, scaled to the fleet).
Above `max_agents` clients each simulated client (agent) stands for `weight` clients:
the accept path's capacity and the admission limits are divided by the weight, so every queue
sees the load it would see at full size, and the tables count clients: each connection row
carries its `weight` (never `weight` copies of it), and each timeseries count is of clients, an
agent's jittered attempt spread over its clients by the jitter's own law
(`formats.record.derive`), so a weighted herd's 1-s peaks are those of independent clients. The
run record's meta says so (`sampling`), and the tests check this path against the plain model. Why at all:
a fixed client refreshes its token about 200 times a day; calm clients play those refreshes in
batches (`sim.client.SimClient.wake`) instead of a timer, a queued token request and an expiry
check each, but every reconnect still runs through the policy and the server's queues, so one
agent per client costs a few ms of CPU per client-day: minutes for 100,000 clients, where 5,000
agents keep a run near a minute. What the spread does not undo: the model's server still meets an
agent's `weight` handshakes at one instant (a queue sees a burst where independent clients would
trickle), and what ends a connection happens to all of an agent's clients at once; the run
record and the report state the weight.
"""
from __future__ import annotations

import ctypes
import dataclasses
import gc
import json
import math
import platform
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pandas as pd

from formats.record import RecordWriter, finalize, files, passes
from formats.record.run import RunRecord
from formats.record.derive import (
    ConnectionWriter, Derivation, Derived, timeseries_columns, write_csv,
)
from formats.record.finalize import in_flight_window
from formats.record.ledger import check, check_user_messages, typed_messages
from formats.record.writer import tool_version
from formats.scenario import draws
from formats.scenario.model import Admission, Scenario
from sim.calibration import Calibration, Testbed, load as load_calibration
from sim.world import ModelOptions, World, no_cyclic_collection
from system.server.lifecycle import EXPIRY_GRACE_S

EXACT_LIMIT = 5000  # up to this many clients, events.jsonl holds every record
MAX_AGENTS = 5000  # above this many clients, agents stand for several clients each
MAX_WALL_S = 900.0  # a simulated run stops after this much wall time, where it is
LEDGER_SAMPLE = 500  # clients whose messages are simulated one by one at fleet scale


@dataclasses.dataclass(frozen=True)
class Sizing:
    clients: int  # the fleet the scenario asks for
    agents: int  # clients the model follows one by one
    weight: int  # clients each agent stands for
    exact: bool  # every record written to events.jsonl

    @classmethod
    def plan(cls, clients: int, max_agents: int = MAX_AGENTS, exact_limit: int = EXACT_LIMIT) -> "Sizing":
        weight = max(1, math.ceil(clients / max_agents))
        agents = max(1, clients // weight)
        return cls(clients, agents, weight, agents * weight <= exact_limit and weight == 1)


def scaled_scenario(scenario: Scenario, weight: int) -> Scenario:
    """The system as one agent of `weight` clients sees it: admission limits divided by the weight.

    A scenario's `system.admission` is the one server both engines run, so it is not scaled up with
    `fleet.sim_clients`: a fleet larger than `max_connections` is shed with 1013 for the whole run,
    which is what a capacity sweep over `sim_clients` is there to show. A scenario about a fleet
    behind several servers states their total capacity (as `staging-day` does); the library's
    capped scenarios choose a `sim_clients` that one server holds."""
    if weight == 1:
        return scenario
    a = scenario.system.admission
    admission = Admission(
        None if a.max_connections is None else max(1, math.ceil(a.max_connections / weight)),
        None if a.handshake_rate is None else a.handshake_rate / weight,
    )
    return dataclasses.replace(scenario, system=dataclasses.replace(scenario.system, admission=admission))


def scaled_calibration(cal: Calibration, weight: int) -> Calibration:
    """Each agent's handshake (and token request and close, when they queue on the server too)
    occupies a server for `weight` requests' worth of service time."""
    if weight == 1:
        return cal

    tokens = None if cal.token_service is None else cal.token_service.times(weight)
    closes = None if cal.close_service is None else cal.close_service.times(weight)
    return dataclasses.replace(cal, handshake_service=cal.handshake_service.times(weight), token_service=tokens,
                               close_service=closes)


def simulate(scenario: Scenario, out_dir: str | Path, *, calibration: str | Path | Calibration | None = None,
             progress: Callable[[float], None] | None = None, max_agents: int | None = None,
             exact_limit: int = EXACT_LIMIT, max_wall_s: float | None = MAX_WALL_S,
             expiry_grace: float = EXPIRY_GRACE_S, testbed: Testbed | None = None,
             calibration_name: str | None = None) -> dict:
    """Run the model on `scenario` at `fleet.sim_clients`, write the run record, return its summary.

    `calibration`: a file (None: the shipped one), or one already read, which the record names by
    `calibration_name` (the file it came from) or else by its source.

    `max_agents`: clients followed one by one at most (None: `MAX_AGENTS`), beyond which agents
    stand for several clients each.

    `expiry_grace` is the server's live-expiry grace in scenario seconds (`validate` passes the
    value the emulation really ran with, which is floored at high time scales). `testbed` models the
    emulation's load generator sharing the server's CPUs (`sim.testbed`; `validate` passes the
    calibration's, scenario-timed by its time scale): a model of the emulated run, not of production.

    A run that needs more than `max_wall_s` of wall time stops where it is: the record then ends
    there (`meta.end_s`), with a warning, rather than the command running for hours."""
    started = time.perf_counter()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if isinstance(calibration, Calibration):
        cal, cal_name = calibration, calibration_name or calibration.source
    else:
        cal, cal_name = load_calibration(calibration)
    size = Sizing.plan(scenario.fleet.sim_clients, MAX_AGENTS if max_agents is None else max_agents, exact_limit)
    model_scenario = scaled_scenario(scenario, size.weight)
    model_cal = scaled_calibration(cal, size.weight)
    if testbed is not None:  # validate: the server's own CPU per request, the rest on the testbed
        if size.weight > 1:  # each agent's requests cost `weight` requests' CPU
            testbed = testbed.scaled(size.weight)
        model_cal = testbed.serving(model_cal)
    out = Path(out_dir)
    warnings: list[str] = []
    if size.weight > 1:
        warnings.append(f"{size.agents} simulated clients each stand for {size.weight} "
                        f"(fleet {size.clients}); accept capacity, listen queues and admission limits scaled by 1/{size.weight}")

    # the collector stays off until the model's cycles are collected here, once: re-enabled at the end of
    # the run, it would first make a full pass of its own through the whole live model
    with no_cyclic_collection():
        with RecordWriter(out) as rec:
            rec.scenario(scenario)
            if size.exact:
                world = World(model_scenario, model_cal, clients=size.agents, sink=rec.events, on_sent=rec.sent,
                              expiry_grace=expiry_grace, testbed=testbed)
                world.server.on_received = rec.received
                world.scrape(rec.scrape, 1, 1.0)
                end = world.run(progress, max_wall_s=max_wall_s)
                ledger = None
            else:
                sample = min(size.agents, LEDGER_SAMPLE)
                sent: list[tuple[str, str, int, float]] = []
                received: list[tuple[str, str, float, bool]] = []
                rows = ConnectionWriter(out / files.CONNECTIONS, size.weight)
                stream = InOrder(Derivation(scenario.duration, weight=size.weight,
                                            rng=draws.numpy_stream(scenario.seed, "sim:spread"), on_rows=rows))
                world = World(model_scenario, model_cal, clients=size.agents,
                              options=ModelOptions(message_clients=sample, keep_all_records=False), sink=stream,
                              on_sent=lambda *row: sent.append(row), expiry_grace=expiry_grace,
                              testbed=testbed, weight=size.weight)
                world.server.on_received = lambda *row: received.append(row)
                world.scrape(rec.scrape, size.weight, size.clients / max(1, sample))
                end = world.run(progress, max_wall_s=max_wall_s)
                derived = stream.result(end)
                rows.close()
                ledger = _ledger(derived, passes.connected_at_end(RunRecord(out)), stream.typed, sent, received,
                                 sample, size.clients)
                _write_timeseries(out, derived, message_scale(size.clients, sample))
                (out / files.LEDGER_SUMMARY).write_text(json.dumps(ledger, indent=2) + "\n")
            if end < scenario.duration:
                warnings.append(f"stopped at {end:.0f} s of {scenario.duration:.0f} s: the run reached its wall-time "
                                f"bound ({max_wall_s:.0f} s); fewer clients or agents (`stormbench run --agents`) run faster")
            rec.faults([_fault_record(r) for r in world.realized])
            rec.meta({
                "engine": "simulate",
                "stormbench_version": tool_version(),
                "seed": scenario.seed,
                "time_scale": 1.0,
                "started_at": started_at,
                "wall_time_s": round(time.perf_counter() - started, 3),
                "host": {"python": platform.python_version(), "machine": platform.machine()},
                "calibration": {"name": cal_name, "source": cal.source, **cal.to_json()},
                "clients": size.clients,
                "sampling": {"agents": size.agents, "weight": size.weight, "exact": size.exact,
                             "ledger_clients": None if ledger is None else min(size.agents, LEDGER_SAMPLE)},
                "model": {"policy_events": world.policy_events, "handshakes": world.server.handshakes * size.weight,
                          "peak_active": world.server.peak_active * size.weight,
                          "tokens_issued": world.tokens.issued * size.weight,
                          "testbed": None if testbed is None else dataclasses.asdict(testbed)},
                "warnings": warnings,
                "self_check": {"sim_time_reached_s": end, "complete": end >= scenario.duration,
                               "faults_applied": world.fault_log},
                **({} if end >= scenario.duration else {"end_s": end}),
            })
        # the model's memory back before finalize reads the tables: a fleet's clients and the world
        # refer to each other, so it takes the cyclic collector (off while the model ran)
        world = stream = derived = sent = received = None  # noqa: F841
        gc.collect()
    _return_freed_memory()
    return finalize(out)


def _return_freed_memory() -> None:
    """Hand the free pages of the C heap back to the system (glibc's `malloc_trim`, where there is
    one). A fleet's objects of over 512 bytes (each client's random generator) came from malloc,
    and the columns finalize reads come from fresh mappings, so the freed heap would otherwise
    stay resident under them."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return
    trim(0)


class InOrder:
    """The model's records handed to a `Derivation` as the model makes them, in the order
    `formats.record.derive.in_order` gives a file (by time, one instant's by client), so the tables
    equal those `finalize` derives from the same records written out, and memory holds one
    instant's records, not the run's. The model makes the records it keeps at fleet scale in time
    order (`sim.world.TALLIED`: a calm client's late-tallied refreshes are not among them); one out
    of order is a bug in the model, and stops the run rather than reorder silently."""

    def __init__(self, derivation: Derivation) -> None:
        self.derivation = derivation
        self.typed: list[dict] = []  # the message sample's `sent` records, for the user-message ledger
        self._t: float | None = None
        self._instant: list[dict] = []

    def __call__(self, records: list[dict]) -> None:
        for r in records:
            t = r["t"]
            if t != self._t:
                if self._t is not None and t < self._t:
                    raise RuntimeError(f"model record out of time order: {r} after t={self._t}")
                self._flush()
                self._t = t
            self._instant.append(r)
            if r["kind"] == "sent":
                self.typed.append(r)

    def _flush(self) -> None:
        instant = self._instant
        if len(instant) > 1:
            instant.sort(key=lambda r: str(r["client"]))
        feed = self.derivation.feed
        for r in instant:
            feed(r)
        self._instant = []

    def result(self, end: float) -> Derived:
        self._flush()
        return self.derivation.result(end)


def _fault_record(r) -> dict:
    d = r.to_dict()
    if d["targets"] is not None and len(d["targets"]) > 1000:
        d["targets"] = {"count": len(d["targets"])}  # a fleet-scale list would dwarf the record
    return d


#: timeseries columns counted on the message sample only (`ModelOptions.message_clients`)
MESSAGE_COLUMNS = frozenset({"displayed", "duplicates"})


def message_scale(clients: int, sample: int) -> float:
    """Fleet clients per sampled message client (an integer when it divides evenly, so the tables
    keep integer counts)."""
    scale = clients / max(1, sample)
    return int(scale) if scale.is_integer() else scale


def _write_timeseries(out: Path, d: Derived, messages: float) -> None:
    """timeseries.csv, each count scaled by what it was measured on: connection counts are of
    clients already (derived with the agents' weight, as connections.csv's `weight` column says),
    message counts (displays, duplicates) are scaled by fleet clients per sampled message client,
    as `ledger_summary.json` is."""
    for row in d.timeseries:
        for key in MESSAGE_COLUMNS:
            row[key] = row[key] * messages
    write_csv(out / files.TIMESERIES, timeseries_columns(d.timeseries), d.timeseries)


def _ledger(d: Derived, until: dict[str, float], typed_records: list[dict], sent: list[tuple[str, str, int, float]],
            received: list[tuple[str, str, float, bool]], sample: int, clients: int) -> dict:
    """The sampled clients' ledger in both directions, judged by `formats.record.ledger` as a full
    record is, scaled to the fleet (`user_messages`: what they typed against what the server stored).

    The same Jepsen rule as a full ledger: a message counts as lost only when its client is
    connected when the run ends and it was sent before the in-flight window; a message to a
    client still being shed (1013) or reconnecting at the end has an unknown outcome
    (`indeterminate`), not a lost one. Each model conversation is named after its client. `until`:
    `formats.record.passes.connected_at_end` of the record's connections."""
    sent_rows = pd.DataFrame.from_records(
        [("sent", conv, conv, msg_id, seq, t) for conv, msg_id, seq, t in sent], columns=list(files.LEDGER_COLUMNS))
    shown = pd.DataFrame.from_records(d.ledger_displayed, columns=list(files.LEDGER_COLUMNS))
    table = pd.concat([sent_rows, shown], ignore_index=True)
    judged = check(table, until, in_flight_window(1.0))
    stored = pd.DataFrame.from_records(received, columns=list(files.RECEIVED_COLUMNS))
    typed = check_user_messages(typed_messages(typed_records), stored, until, in_flight_window(1.0))
    scale = message_scale(clients, sample)
    return {**{k: round(v * scale) for k, v in judged.to_dict().items()},
            files.LEDGER_USER: {k: round(v * scale) for k, v in typed.to_dict().items()}}
