"""A weighted model agent stands for `weight` clients that do not act in lockstep (`formats.record.derive`).

An attempt that followed a jittered backoff is spread over the agent's clients by the law the
backoff's delay was drawn from; an unjittered one (the legacy client's fixed delay) is not; what
ends a connection happens to all of them at the agent's time. Every count is of clients, and
connections.csv carries the weight as a column, which every reader honours."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from formats.record import files
from formats.record.derive import derive
from formats.record.run import RecordError, RunRecord

WEIGHT = 1000


def one_agent(jitter: list[float] | None) -> list[dict]:
    """A restart close at 100 s, a delay of 4 s (drawn from U(0, 10) when `jitter`), a token answer
    0.5 s later, the attempt and its open, and the next restart's close at 200 s."""
    backoff = {"t": 100.0, "client": "c0", "kind": "backoff", "delay": 4.0, "reason": "close_1012"}
    return [{"t": 10.0, "client": "c0", "kind": "attempt", "sock": 1, "n": 0},
            {"t": 10.1, "client": "c0", "kind": "open", "sock": 1},
            {"t": 100.0, "client": "c0", "kind": "close", "sock": 1, "code": 1012, "by": "server"},
            backoff if jitter is None else {**backoff, "jitter": jitter},
            {"t": 104.5, "client": "c0", "kind": "attempt", "sock": 2, "n": 1},
            {"t": 104.6, "client": "c0", "kind": "open", "sock": 2},
            {"t": 200.0, "client": "c0", "kind": "close", "sock": 2, "code": 1012, "by": "server"}]


def series(d, column: str) -> np.ndarray:
    return np.array([row[column] for row in d.timeseries])


def test_a_jittered_attempt_is_spread_over_the_agents_clients_by_its_law():
    d = derive(one_agent([0.0, 10.0, 10.0]), 300.0, weight=WEIGHT, rng=np.random.default_rng(1))
    reconnects, opens = series(d, "reconnects"), series(d, "opens")
    assert reconnects.sum() == opens[100:].sum() == WEIGHT
    # each client at 100 + U(0, 10) + 0.5: the ten seconds from 100.5, about a hundred in each
    assert reconnects[:100].sum() == 0 and reconnects[111:].sum() == 0
    assert np.all(np.abs(reconnects[101:110] - WEIGHT / 10) < 5 * np.sqrt(WEIGHT / 10))
    assert reconnects[104] >= 1  # the agent's own draw is one of them
    # the first connect (no backoff before it) and the closes are the agent's, for all its clients
    assert series(d, "attempts")[10] == WEIGHT and series(d, "closes_1012")[100] == WEIGHT
    assert series(d, "closes_1012")[200] == WEIGHT
    active = series(d, "active")
    assert active[50] == WEIGHT and active[105] == opens[100:106].sum() and active[150] == WEIGHT
    assert active[250] == 0
    assert len(d.connections) == 2  # one row per agent connection, as it happened to the agent
    assert d.connections["opened_s"].iloc[1] == 104.6


def test_a_fixed_delay_stays_in_lockstep_and_weight_one_is_the_plain_derive():
    lockstep = derive(one_agent(None), 300.0, weight=WEIGHT, rng=np.random.default_rng(1))
    assert series(lockstep, "reconnects")[104] == series(lockstep, "reconnects").sum() == WEIGHT
    plain = derive(one_agent([0.0, 10.0, 10.0]), 300.0)
    assert plain.timeseries == derive(one_agent([0.0, 10.0, 10.0]), 300.0, weight=1, rng=np.random.default_rng(1)).timeseries
    assert series(plain, "reconnects")[104] == 1 and series(plain, "reconnects").sum() == 1


def test_a_capped_law_never_draws_past_its_cap():
    """Decorrelated jitter's min(cap, U(low, high)): no client waits longer than the cap."""
    d = derive(one_agent([1.0, 30.0, 6.0]), 300.0, weight=WEIGHT, rng=np.random.default_rng(2))
    reconnects = series(d, "reconnects")
    assert reconnects.sum() == WEIGHT and reconnects[:101].sum() == 0 and reconnects[107:].sum() == 0
    assert reconnects[106] > WEIGHT / 2  # the draws above the cap wait exactly the cap: 106.5


def write_connections(tmp_path, weights: list | None):
    rows = pd.DataFrame({"client": ["c0", "c1"], "conn": ["1", "1"], "opened_s": [0.0, 1.0],
                         "closed_s": [None, 5.0], "duration_s": [10.0, 4.0], "close_code": [None, 1006],
                         "closed_by": [None, "network"], "http_status": [None, None], "censored": [1, 0]})
    if weights is not None:
        rows[files.WEIGHT] = weights
    rows.to_csv(tmp_path / files.CONNECTIONS, index=False)
    (tmp_path / files.SCENARIO).write_text("{}")
    return RunRecord(tmp_path)


def test_connections_without_a_weight_column_weigh_one_each(tmp_path):
    assert write_connections(tmp_path, None).connections[files.WEIGHT].tolist() == [1, 1]


def test_a_weight_column_is_read_and_a_bad_weight_named(tmp_path):
    assert write_connections(tmp_path, [20, 20]).connections[files.WEIGHT].tolist() == [20, 20]
    with pytest.raises(RecordError, match=r"connections.csv: line 3: column 'weight': expected a whole number >= 1"):
        write_connections(tmp_path, [20, 0]).connections
