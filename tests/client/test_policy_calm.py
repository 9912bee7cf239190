"""The calm path of the policy (`ClientPolicy.calm`, `refresh_in_band`) against its events.

A driver that batches calm periods (the SimPy model) plays a calm client's refreshes through
`refresh_in_band` instead of a `TimerFired` and a `TokenResult` each; that is only sound if the
two leave the policy in exactly the same state, with the same records and the same random draws.
"""
from __future__ import annotations

import copy
import random

from hypothesis import given, settings, strategies as st

from system.client.policy import (
    ClientConfig, ClientPolicy, FetchToken, Fixes, OpenSocket, Send, SocketClosed, SocketOpened, Start,
    TimerFired, TokenResult,
)

TTL = 900.0


def state(p: ClientPolicy) -> dict:
    """Everything the policy holds, its random generators by their state."""
    out = {k: v for k, v in vars(p).items() if k not in ("_rng", "_backoff", "_refresh_backoff")}
    out["rng"] = p._rng.getstate()
    for name in ("_backoff", "_refresh_backoff"):
        out[name] = {k: v for k, v in vars(getattr(p, name)).items() if k != "_rng"}
    return out


def opened(config: ClientConfig, seed: int) -> ClientPolicy:
    """A client that logged in and opened its socket: calm, with a refresh pending."""
    p = ClientPolicy(config, random.Random(seed), "c1")
    assert isinstance(p.handle(Start(0.0))[0], FetchToken)
    open_ = next(a for a in p.handle(TokenResult(0.5, True, 200, "t0", 0.5 + TTL)) if isinstance(a, OpenSocket))
    p.handle(SocketOpened(0.6, open_.sock))
    return p


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), latency=st.floats(0.0, 2.0),
       disable=st.sets(st.sampled_from(["jitter", "dedup_resume", "client_metrics", "listener_cleanup"])))
def test_refresh_in_band_is_the_timer_and_the_token_answer(seed, latency, disable):
    config = ClientConfig(fixes=Fixes.profile("fixed").with_changes(disable=sorted(disable)), token_ttl=TTL)
    events = opened(config, seed)
    assert events.calm()
    batch = copy.deepcopy(events)
    for k in range(1, 20):
        due = events.refresh_due
        assert due == batch.refresh_due and due > 0
        answered = due + latency
        token, expires = f"t{k}", answered + TTL
        assert events.handle(TimerFired(due, "refresh")) == [FetchToken(refresh=True)]
        actions = events.handle(TokenResult(answered, True, 200, token, expires))
        sync = [a for a in actions if isinstance(a, Send)]
        assert [a.frame["type"] for a in sync] == ["auth_refresh"]  # what the batching driver does itself
        assert batch.refresh_in_band(answered, token, expires) == events.refresh_due
        assert state(batch) == state(events)
        assert batch.drain_records() == events.drain_records()
        assert events.calm() and batch.calm()


def test_a_client_with_anything_else_ahead_is_not_calm():
    config = ClientConfig(fixes=Fixes.profile("fixed"), token_ttl=TTL)
    p = ClientPolicy(config, random.Random(1), "c1")
    assert not p.calm()  # not started
    p.handle(Start(0.0))
    assert not p.calm()  # fetching its first token
    open_ = next(a for a in p.handle(TokenResult(0.5, True, 200, "t0", 0.5 + TTL)) if isinstance(a, OpenSocket))
    assert not p.calm()  # its socket is still opening
    p.handle(SocketOpened(0.6, open_.sock))
    assert p.calm()
    p.handle(SocketClosed(5.0, open_.sock, 1006, "", "network"))
    assert not p.calm()  # a reconnect is ahead
    legacy = opened(ClientConfig(fixes=Fixes.profile("legacy"), token_ttl=TTL), 1)
    assert not legacy.calm()  # each token change opens a socket


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 12))
def test_a_batch_told_its_token_afterwards_is_the_batch_told_each(seed, n):
    """The model plays a batch without tokens (None) and settles the last one afterwards
    (`settle_token`): the same state and records as being told each token as it came."""
    config = ClientConfig(fixes=Fixes.profile("fixed"), token_ttl=TTL)
    told = opened(config, seed)
    later = copy.deepcopy(told)
    for k in range(n):
        answered = told.refresh_due + 0.25
        assert later.refresh_in_band(answered, None, answered + TTL) == told.refresh_in_band(answered, f"t{k}",
                                                                                             answered + TTL)
    later.settle_token(f"t{n - 1}", answered + TTL)
    assert state(later) == state(told)
    assert later.drain_records() == told.drain_records()
    assert later.calm()
