"""The token service is down for a while: the fixed client rides it out, the legacy one does not.

staging-day's case is a 5-min auth outage and a 15-min token. The fixed client refreshes at a
jittered half-life and retries until it gets a token, so an outage shorter than about half the
lifetime never lets its token expire, wherever the outage falls in the refresh cycle. The
legacy client refreshes once, `refresh_lead` before expiry, and keeps its old token when that
fails."""
from __future__ import annotations

import argparse
import random

import pytest
from hypothesis import given, settings, strategies as st

from system.client.cli import config_from_args, configure
from system.client.policy import (
    ClientConfig, ClientPolicy, Fixes, FetchToken, SetTimer, Start, TimerFired, TokenResult,
)
from tests.client.auth_world import AuthWorld

TTL, OUTAGE, LEAD = 900.0, 300.0, 225.0   # staging-day: 15-min tokens, a 5-min outage, lead min(5 min, TTL/4)
#: outage starts every 15 s over one whole refresh cycle, after the fleet has settled
PHASES = [1800.0 + k * 15.0 for k in range(60)]


def policy(profile: str = "fixed", seed: int = 1, **overrides) -> ClientPolicy:
    config = ClientConfig(fixes=Fixes.profile(profile), token_ttl=TTL, refresh_lead=LEAD, **overrides)
    return ClientPolicy(config, random.Random(seed), "c1")


def ride(p: ClientPolicy, start: float, duration: float = OUTAGE, ttl: float = TTL) -> AuthWorld:
    return AuthWorld(p, ttl=ttl, outage=(start, start + duration)).run(until=start + duration + 2 * ttl)


@pytest.mark.parametrize("start", PHASES)
def test_fixed_client_never_lets_its_token_expire_in_a_5_minute_outage(start):
    w = ride(policy("fixed", seed=int(start)), start)
    assert w.closes_4401 == [] and w.expired_for == 0.0 and w.lapsed_for == 0.0


def test_the_outage_does_hit_the_fixed_clients_refreshes():
    """Guards the test above against passing vacuously: most phases see failed refreshes retried."""
    hit = 0
    for start in PHASES:
        p = policy("fixed", seed=int(start))
        AuthWorld(p, ttl=TTL, outage=(start, start + OUTAGE)).run(until=start + OUTAGE + 2 * TTL)
        failed = [r for r in p.drain_records() if r["kind"] == "token" and r["refresh"] and not r["ok"]]
        hit += len(failed) >= 2  # a failure, then at least one retry that also met the outage
    assert hit >= len(PHASES) // 2


@pytest.mark.parametrize("profile, overrides", [
    ("legacy", {}),                                            # one refresh at expiry - lead, not retried
    ("fixed", {"refresh_at": 0.75, "refresh_jitter": 0.0}),    # retried, but a quarter-life lead is < 5 min
])
def test_a_quarter_life_lead_lets_the_token_expire_in_some_phases(profile, overrides):
    lapsed = [start for start in PHASES if ride(policy(profile, seed=int(start), **overrides), start).lapsed_for > 0]
    assert len(lapsed) >= 5, lapsed


def test_legacy_current_socket_is_closed_4401_after_the_outage():
    for start in PHASES:
        w = ride(policy("legacy"), start)
        if w.lapsed_for > 0:
            assert any(start <= t <= start + OUTAGE + TTL for t in w.closes_4401)
            return
    pytest.fail("no phase let the legacy client's token expire")


def test_an_outage_longer_than_the_token_expires_even_the_fixed_client():
    """The world can see a lapse of the fixed client: the property below is not vacuous."""
    w = ride(policy("fixed"), 1800.0, duration=1.5 * TTL)
    assert w.lapsed_for > 0 and w.closes_4401


@settings(max_examples=120, deadline=None)
@given(ttl=st.floats(120.0, 7200.0), max_delay=st.floats(2.0, 60.0), start=st.floats(0.0, 2.0),
       margin=st.floats(0.0, 1.0), jitter=st.sampled_from(["full", "equal", "decorrelated"]),
       seed=st.integers(0, 2**32 - 1))
def test_fixed_client_rides_out_any_outage_shorter_than_its_tolerance(ttl, max_delay, start, margin, jitter, seed):
    """Tolerance: the first attempt leaves at least (1 - refresh_at) of the lifetime; after the
    outage the next retry comes within `max_delay`, and each request takes `latency`."""
    latency = 0.2
    config = ClientConfig(fixes=Fixes.profile("fixed"), jitter=jitter, token_ttl=ttl, refresh_lead=ttl / 4,
                          max_delay=max_delay)
    tolerance = (1 - config.refresh_at) * ttl - max_delay - 2 * latency
    if tolerance <= 0:
        return
    duration = tolerance * margin * 0.999
    w = AuthWorld(ClientPolicy(config, random.Random(seed), "c1"), ttl=ttl, outage=(start * ttl, start * ttl + duration),
                  latency=latency).run(until=start * ttl + duration + 2 * ttl)
    assert w.lapsed_for == 0.0 and w.closes_4401 == []


def refresh_times(profile: str, clients: int = 200, **fix_changes) -> list[float]:
    """Every client logs in at t=0 and gets a 900-s token: when does each plan to refresh?"""
    times = []
    for i in range(clients):
        fixes = Fixes.profile(profile).with_changes(**fix_changes)
        p = ClientPolicy(ClientConfig(fixes=fixes, token_ttl=TTL, refresh_lead=LEAD), random.Random(i), f"c{i}")
        assert p.handle(Start(0.0)) == [FetchToken(refresh=False)]
        [timer] = [a for a in p.handle(TokenResult(0.0, True, 200, "t", TTL)) if isinstance(a, SetTimer)]
        times.append(timer.at)
    return times


def test_a_fleet_that_logged_in_together_refreshes_spread_over_a_tenth_of_the_lifetime():
    times = refresh_times("fixed")
    assert 0.4 * TTL <= min(times) and max(times) <= 0.5 * TTL
    assert max(times) - min(times) >= 0.08 * TTL
    assert len({round(t, 6) for t in times}) == len(times)


def test_without_the_jitter_fix_the_fleet_refreshes_in_one_herd_at_half_life():
    assert set(refresh_times("fixed", disable=["jitter"])) == {0.5 * TTL}


def test_legacy_refreshes_refresh_lead_before_expiry():
    assert set(refresh_times("legacy")) == {TTL - LEAD}


@pytest.mark.parametrize("overrides, field", [
    ({"refresh_at": 1.0}, "refresh_at"),
    ({"refresh_at": -0.1}, "refresh_at"),
    ({"refresh_jitter": 0.5}, "refresh_jitter"),          # not below refresh_at (0.5)
    ({"refresh_at": 0.3, "refresh_jitter": 0.3}, "refresh_jitter"),
    ({"refresh_jitter": "0.1"}, "refresh_jitter"),
])
def test_bad_refresh_fractions_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=f"ClientConfig.{field}"):
        ClientConfig(**overrides)


def test_refresh_flags_reach_the_config_and_bad_ones_name_the_field():
    parser = argparse.ArgumentParser()
    configure(parser)
    base = ["--ws-url", "ws://127.0.0.1:1", "--http-url", "http://127.0.0.1:1"]
    c = config_from_args(parser.parse_args(base + ["--refresh-at", "0.6", "--refresh-jitter", "0.2"]))
    assert (c.refresh_at, c.refresh_jitter) == (0.6, 0.2)
    d = config_from_args(parser.parse_args(base))
    assert (d.refresh_at, d.refresh_jitter) == (ClientConfig().refresh_at, ClientConfig().refresh_jitter)
    with pytest.raises(ValueError, match="ClientConfig.refresh_at"):
        config_from_args(parser.parse_args(base + ["--refresh-at", "1.5"]))


def test_failed_refresh_retries_are_capped_by_a_quarter_of_the_life_left_then_by_max_delay():
    p = policy("fixed", seed=5, max_delay=30.0)
    p.handle(Start(0.0))
    p.handle(TokenResult(0.0, True, 200, "t0", TTL))
    now, delays = 450.0, []
    while now < TTL + 100:
        assert p.handle(TimerFired(now, "refresh")) == [FetchToken(refresh=True)]
        [timer] = [a for a in p.handle(TokenResult(now, False, 503)) if isinstance(a, SetTimer)]
        delays.append((now, timer.at - now))
        now = timer.at
    for t, d in delays:
        assert 0 <= d <= max(30.0, (TTL - t) / 4) + 1e-9, (t, d)
    assert any(d > 30.0 for _, d in delays)          # early on, the dead service is spared
    assert all(d <= 30.0 for t, d in delays if t >= TTL - 120)  # near and past expiry: max_delay
