"""Properties of the reconnect policy over long random histories (hypothesis picks the
client, the fixes and the seeds; tests/client/world.py plays network and server)."""
from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings, strategies as st

from system.client.backoff import Backoff
from system.client.policy import FIX_NAMES, ClientConfig, ClientPolicy, Display, Fixes, FrameReceived, Stop
from tests.client.world import World

fixes_st = st.builds(Fixes, **{name: st.booleans() for name in FIX_NAMES})
config_st = st.builds(
    ClientConfig,
    fixes=fixes_st,
    jitter=st.sampled_from(["full", "equal", "decorrelated"]),
    base_delay=st.floats(0.1, 2.0),
    max_delay=st.floats(2.0, 40.0),
    legacy_delay=st.floats(0.1, 3.0),
    max_retries=st.integers(1, 6),
    restart_window=st.floats(0.0, 20.0),
    overload_base=st.floats(0.0, 10.0),
    token_ttl=st.just(60.0),
    refresh_lead=st.floats(1.0, 20.0),
    stable_after=st.floats(1.0, 15.0),
    think_time=st.floats(0.5, 20.0),
)
seed_st = st.integers(0, 2**32 - 1)
STEPS = 300
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def walk(config: ClientConfig, policy_seed: int, world_seed: int) -> tuple[World, list[dict]]:
    policy = ClientPolicy(config, random.Random(policy_seed), "c1")
    world = World(policy, world_seed).run(STEPS)
    return world, policy.drain_records()


@PROPERTY
@given(config=config_st, policy_seed=seed_st, world_seed=seed_st)
def test_single_writer_never_has_two_live_sockets(config, policy_seed, world_seed):
    config = ClientConfig(**{**config.__dict__, "fixes": config.fixes.with_changes(enable=["single_writer"])})
    world, records = walk(config, policy_seed, world_seed)
    assert world.max_live <= 1
    assert sum(r["kind"] == "attempt" for r in records) > 0


@PROPERTY
@given(config=config_st, policy_seed=seed_st, world_seed=seed_st)
def test_every_delay_within_bounds(config, policy_seed, world_seed):
    world, records = walk(config, policy_seed, world_seed)
    bound = config.delay_bound()
    backoffs = [r for r in records if r["kind"] == "backoff"]
    for r in backoffs:
        assert 0.0 <= r["delay"] <= bound + 1e-9, r
        if r["reason"] == "close_1013" and config.fixes.close_code_hygiene:
            assert r["delay"] >= config.overload_base
        if r["reason"] == "close_1012" and config.fixes.close_code_hygiene:
            assert r["delay"] <= config.restart_window
    if not config.fixes.jitter:
        ceilings = {Backoff(config, random.Random(0)).ceiling(k) for k in range(80)}
        for r in backoffs:
            if r["reason"] not in ("close_1012", "close_1013", "online"):
                assert any(abs(r["delay"] - c) < 1e-9 for c in ceilings), r


@PROPERTY
@given(config=config_st, policy_seed=seed_st, world_seed=seed_st)
def test_attempt_counter_resets_after_a_stable_connection(config, policy_seed, world_seed):
    _, records = walk(config, policy_seed, world_seed)
    opened: dict[int, float] = {}
    expect_at_most: int | None = None   # the next attempt's n after a stable close
    last_attempt_sock = None
    previous_n = None
    for r in records:
        kind = r["kind"]
        if kind == "open":
            opened[r["sock"]] = r["t"]
        elif kind == "close" and r["sock"] == last_attempt_sock and r["by"] != "client":
            if r["sock"] in opened and r["t"] - opened[r["sock"]] >= config.stable_after:
                expect_at_most = 1
        elif kind == "give_up":
            expect_at_most = 0
        elif kind == "attempt":
            n = r["n"]
            if expect_at_most is not None:
                assert n <= expect_at_most, (r, expect_at_most)
            elif previous_n is not None:
                assert n in (previous_n + 1, 1, 0), (r, previous_n)   # counts up unless reset
            expect_at_most, previous_n, last_attempt_sock = None, n, r["sock"]
    assert previous_n is not None


@PROPERTY
@given(config=config_st, policy_seed=seed_st, world_seed=seed_st)
def test_dedup_displays_each_message_once(config, policy_seed, world_seed):
    config = ClientConfig(**{**config.__dict__, "fixes": config.fixes.with_changes(enable=["dedup_resume"])})
    world, records = walk(config, policy_seed, world_seed)
    world.feed(Stop(world.now))  # shows whatever still waits for a gap to fill
    records += world.policy.drain_records()
    displayed = [r["msg_id"] for r in records if r["kind"] == "displayed"]
    assert len(displayed) == len(set(displayed))
    received = [r for r in records if r["kind"] == "received"]
    dropped = [r for r in records if r["kind"] == "duplicate_dropped"]
    assert len(received) == len(displayed) + len(dropped)


@PROPERTY
@given(config=config_st, policy_seed=seed_st, world_seed=seed_st)
def test_dedup_is_idempotent_on_a_repeated_frame(config, policy_seed, world_seed):
    config = ClientConfig(**{**config.__dict__, "fixes": config.fixes.with_changes(enable=["dedup_resume"])})
    world, _ = walk(config, policy_seed, world_seed)
    if not world.open:
        return
    sock = min(world.open)
    seq = (world.policy.last_seq or 0) + 1  # the next in order: shown at once
    frame = {"v": "1.0", "type": "assistant_message", "id": "fresh-id", "seq": seq, "agent": "x", "text": "t"}
    first = world.feed(FrameReceived(world.now, sock, frame))
    last_seq = world.policy.last_seq
    again = [world.feed(FrameReceived(world.now, sock, frame)) for _ in range(3)]
    assert first[0] == Display(frame)
    assert all([type(a).__name__ for a in actions] == ["DropDuplicate"] for actions in again)
    assert world.policy.last_seq == last_seq >= seq


@PROPERTY
@given(config=config_st, policy_seed=seed_st, world_seed=seed_st)
def test_same_seed_same_decisions(config, policy_seed, world_seed):
    first, first_records = walk(config, policy_seed, world_seed)
    second, second_records = walk(config, policy_seed, world_seed)
    assert first.trace == second.trace
    assert first_records == second_records


def test_different_policy_seeds_change_jittered_decisions():
    """Guards the previous property against passing vacuously: the seed does reach the delays."""
    config = ClientConfig(fixes=Fixes.profile("fixed"))
    runs = {tuple(r["delay"] for r in walk(config, seed, 7)[1] if r["kind"] == "backoff") for seed in range(3)}
    assert len(runs) == 3


def test_without_single_writer_sockets_do_pile_up():
    """Guards the single-writer property against passing vacuously: the world does make overlaps."""
    config = ClientConfig(fixes=Fixes.profile("legacy"), token_ttl=60.0, refresh_lead=20.0)
    assert max(walk(config, seed, seed)[0].max_live for seed in range(10)) >= 2


@PROPERTY
@given(config=config_st, policy_seed=seed_st, world_seed=seed_st)
def test_network_awareness_never_attempts_offline(config, policy_seed, world_seed):
    config = ClientConfig(**{**config.__dict__, "fixes": config.fixes.with_changes(enable=["network_awareness"])})
    world, records = walk(config, policy_seed, world_seed)
    offline_spans, start = [], None
    for r in records:
        if r["kind"] == "offline":
            start = r["t"]
        elif r["kind"] == "online" and start is not None:
            offline_spans.append((start, r["t"]))
            start = None
    if start is not None:
        offline_spans.append((start, float("inf")))
    for r in records:
        if r["kind"] == "attempt":
            assert not any(a <= r["t"] < b for a, b in offline_spans), r
