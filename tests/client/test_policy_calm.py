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
    out = {k: getattr(p, k) for k in ClientPolicy.__slots__ if k not in ("_rng", "_backoff", "_refresh_backoff")}
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


def refused(p: ClientPolicy, times: int) -> None:
    """`times` refreshes refused (an auth outage): the policy retries later, still calm."""
    for _ in range(times):
        due = p.refresh_due
        assert p.handle(TimerFired(due, "refresh")) == [FetchToken(refresh=True)]
        p.handle(TokenResult(due + 0.01, False, 503))


def by_events(p: ClientPolicy, latencies: list[float]) -> list[float]:
    """Each refresh as its timer firing and its token answer `latency` later: the answer times."""
    answers = []
    for k, latency in enumerate(latencies):
        due = p.refresh_due
        answered = due + latency
        assert p.handle(TimerFired(due, "refresh")) == [FetchToken(refresh=True)]
        actions = p.handle(TokenResult(answered, True, 200, f"r{k}", answered + TTL))
        sync = [a for a in actions if isinstance(a, Send)]
        assert [a.frame["type"] for a in sync] == ["auth_refresh"]  # what the batching driver does itself
        answers.append(answered)
    return answers


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), latencies=st.lists(st.floats(0.0, 2.0), min_size=1, max_size=30),
       disable=st.sets(st.sampled_from(["jitter", "dedup_resume", "client_metrics", "listener_cleanup"])),
       keep=st.sampled_from([None, frozenset({"open"}), frozenset({"token"})]), failed=st.integers(0, 3))
def test_refresh_in_band_is_the_timers_and_the_token_answers(seed, latencies, disable, keep, failed):
    """The batch up to the next refresh's due time, told its last token afterwards (`settle_token`),
    against the events: the same answer times, state, records and draws; also for a client whose
    last refreshes were refused (it rests again as soon as an auth outage ends, its retry pending)."""
    config = ClientConfig(fixes=Fixes.profile("fixed").with_changes(disable=sorted(disable)), token_ttl=TTL)
    events = opened(config, seed)
    refused(events, failed)
    events._record_kinds = keep
    events.drain_records()
    assert events.calm()
    batch = copy.deepcopy(events)
    answers = by_events(events, latencies)
    assert events.calm()
    told = iter(latencies)
    played, in_flight = batch.refresh_in_band(events.refresh_due, lambda: next(told), TTL)
    assert (played, in_flight) == (answers, None)
    batch.settle_token(f"r{len(latencies) - 1}", answers[-1] + TTL)
    assert batch.refresh_due == events.refresh_due
    assert state(batch) == state(events)
    assert batch.drain_records() == events.drain_records()
    assert batch.calm()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 12), latency=st.floats(0.01, 2.0))
def test_a_refresh_answered_after_now_is_left_in_flight(seed, n, latency):
    """A refresh due before `now` whose answer would come after it is not played: it stays pending,
    its due time returned, for the driver to fire (the events then take over from there)."""
    config = ClientConfig(fixes=Fixes.profile("fixed"), token_ttl=TTL)
    events = opened(config, seed)
    batch = copy.deepcopy(events)
    answers = by_events(events, [latency] * n)
    due = events.refresh_due
    now = due + latency / 2  # the next one is due, its answer not yet here
    played, in_flight = batch.refresh_in_band(now, lambda: latency, TTL)
    assert played == answers and in_flight == due
    if n:
        batch.settle_token(f"r{n - 1}", answers[-1] + TTL)
    assert state(batch) == state(events)
    assert batch.drain_records() == events.drain_records()


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
