"""How much of the fleet is connected: distinct clients with an open connection over the clients
that should be connected by then.

Why not the `active` column over its level before a fault: `active` counts sockets, and a legacy
client leaves its old socket open when it opens a new one, so the "fraction" read 3.4; and the
level before a fault already left out every client the server had turned away (1013 all run long
above the admission cap), so a fleet half shed "recovered" to 1.0. Here the denominator is every
client whose arrival (the scenario's seeded ramp) has come, whether or not it ever got in, and the
numerator counts each client once, so a turned-away client counts against the fleet and the
fraction never exceeds 1. A connection the server shed with 1013 was refused before its welcome:
it does not make its client connected.

Clients a load spike adds (indices after the base fleet) are not the fleet: they are left out of
both sides. In a weighted simulation each agent's rows carry its `weight` (connections.csv's
`weight` column): the agent is followed and counts for that many clients.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from formats.record import files
from formats.record.compact import ClientCodes, Columns
from formats.record.run import RunRecord
from formats.record.storms import sampling_weight
from formats.streams import ramp_arrivals


SHED = 1013  # "try again later": the admission policy's answer, given before any welcome


@dataclass(frozen=True)
class Presence:
    connected: np.ndarray   # per second: distinct fleet clients with a connection open in that second
    expected: np.ndarray    # per second: fleet clients whose arrival has come by the end of that second
    ever: int               # fleet clients that had a connection open at some time

    def fraction(self, second: int) -> float | None:
        """Connected over expected at `second`; None when nobody should be connected yet."""
        expected = float(self.expected[second])
        if expected <= 0:
            return None
        return min(1.0, float(self.connected[second]) / expected)

    def never_connected(self) -> int:
        """Fleet clients that had arrived by the end and never had a connection open."""
        return max(0, int(self.expected[-1]) - self.ever) if self.expected.size else 0


def _agents(rec: RunRecord) -> tuple[int, int]:
    """(agents, weight): the clients the record follows one by one and how many each stands for."""
    weight = int(sampling_weight(rec.meta))
    sampling = rec.meta.get("sampling") or {}
    agents = int(sampling.get("agents") or max(1, rec.clients // weight))
    return agents, weight


def _fleet_index(ids: pd.Series) -> np.ndarray:
    """The client index of `c00017`; -1 where an id is not of that shape (kept)."""
    digits = ids.str.extract(r"^c(\d+)", expand=False)
    return pd.to_numeric(digits, errors="coerce").fillna(-1).to_numpy(int)


def presence(rec: RunRecord) -> Presence:
    return rec.memo("presence", lambda: _presence(rec))


def _presence(rec: RunRecord) -> Presence:
    bins = len(rec.timeseries)
    agents, weight = _agents(rec)
    fleet_doc = rec.scenario.get("fleet", {})
    ramp = float((fleet_doc.get("arrival") or {}).get("ramp") or 0.0)
    arrivals = np.sort(np.asarray(ramp_arrivals(int(rec.scenario.get("seed", 0)), ramp, agents), float))
    seconds = np.arange(bins, dtype=float)
    expected = np.searchsorted(arrivals, seconds + 1.0, side="left").astype(float) * weight

    clients = ClientCodes()
    columns = Columns()
    for chunk in rec.connection_chunks(("client", "opened_s", "duration_s", "close_code", "http_status", files.WEIGHT),
                                       clients):
        # a 1013 is the server shedding the socket before its welcome: that client was turned away
        shed = chunk["close_code"].eq(SHED).fillna(False)  # an open (censored) connection has no code: not shed
        lived = (chunk["http_status"].isna() & chunk["duration_s"].notna() & ~shed).to_numpy(bool)
        opened = chunk["opened_s"].to_numpy(float)[lived]
        columns.add("client", chunk["client"].to_numpy()[lived])
        columns.add("start", opened)
        columns.add("stop", opened + chunk["duration_s"].to_numpy(float)[lived])
        columns.add("weight", chunk[files.WEIGHT].to_numpy()[lived])
    codes, start, stop, weight = (columns.join(name) for name in ("client", "start", "stop", "weight"))
    ids = clients.ids()
    of_fleet = _fleet_index(pd.Series(ids, dtype=object)) < agents  # by id
    # -1: no id, read as the id "nan" (kept: not of the fleet's shape)
    kept = ((codes < 0) | of_fleet[np.maximum(codes, 0)]) if len(ids) else None
    delta = np.zeros(bins + 1)
    ever = 0
    # clients a block at a time: the sorts and group-bys below hold a block's rows, not the fleet's
    blocks = max(1, math.ceil(len(codes) / BLOCK_ROWS))
    edges = np.linspace(-1, len(ids), blocks + 1).round().astype(int)
    for lo, hi in zip(edges, edges[1:]):
        in_block = (codes >= lo) & (codes < hi)
        block = np.flatnonzero(in_block if kept is None else in_block & kept)
        if len(block):
            frame = pd.DataFrame({"client": codes[block], "start": start[block], "stop": stop[block],
                                  "weight": weight[block].astype(int)})
            ever += _add_segments(frame, delta, bins)
    connected = np.cumsum(delta)[:bins]
    return Presence(connected, expected, ever)


#: connections whose segments are found at once (a block of clients' rows)
BLOCK_ROWS = 250_000


def _add_segments(frame: pd.DataFrame, delta: np.ndarray, bins: int) -> int:
    """Add each client's spans of being connected (its connections merged where they overlap) to
    `delta`, the per-second change of the count; returns the clients (their weight) ever connected."""
    frame = frame.sort_values(["client", "start"], kind="mergesort").reset_index(drop=True)
    reach = frame.groupby("client", sort=False)["stop"].cummax()
    before = reach.groupby(frame["client"], sort=False).shift(1)
    starts = (before.isna() | (frame["start"] > before)).to_numpy()
    seg_start = frame["start"].to_numpy()[starts]
    seg_stop = np.maximum.reduceat(frame["stop"].to_numpy(), np.flatnonzero(starts))
    seg_weight = frame["weight"].to_numpy()[starts]
    # the convention of the `active` column: open in second i when int(start) <= i < int(stop)
    lo = np.clip(seg_start.astype(int), 0, bins)
    hi = np.clip(seg_stop.astype(int), 0, bins)
    np.add.at(delta, lo, seg_weight)
    np.add.at(delta, hi, -seg_weight)
    return int(frame.groupby("client", sort=False)["weight"].max().sum())
