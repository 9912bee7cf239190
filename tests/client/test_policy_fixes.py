"""What each fix changes, one decision at a time (the policy driven by hand)."""
from __future__ import annotations

import random

import pytest

from system.client.policy import (
    FIX_NAMES, CancelTimer, ClientConfig, ClientPolicy, CloseSocket, Display, DropDuplicate, FetchToken,
    Fixes, FrameReceived, GiveUp, HandshakeFailed, NetworkOffline, NetworkOnline, OpenSocket, Send,
    SetTimer, SocketClosed, SocketOpened, Start, Stop, TimerFired, TokenResult, UserMessage,
)


def make(profile: str = "fixed", enable=(), disable=(), **overrides) -> ClientPolicy:
    fixes = Fixes.profile(profile).with_changes(enable=enable, disable=disable)
    return ClientPolicy(ClientConfig(fixes=fixes, **overrides), random.Random(3), "c1")


def of(actions, kind):
    return [a for a in actions if isinstance(a, kind)]


def connected(p: ClientPolicy, now: float = 0.0, ttl: float = 900.0) -> int:
    """Start, get a token, open the first socket; returns its id."""
    assert p.handle(Start(now)) == [FetchToken(refresh=False)]
    opens = of(p.handle(TokenResult(now, True, 200, "t0", now + ttl)), OpenSocket)
    assert len(opens) == 1
    p.handle(SocketOpened(now, opens[0].sock))
    return opens[0].sock


def msg(i: int) -> dict:
    return {"v": "1.0", "type": "assistant_message", "id": f"m{i}", "seq": i, "agent": "echo", "text": "x"}


# ---- configuration ----

def test_profiles_and_changes():
    assert Fixes.profile("legacy").enabled() == []
    assert Fixes.profile("fixed").enabled() == list(FIX_NAMES)
    mixed = Fixes.profile("fixed").with_changes(disable=["jitter"])
    assert not mixed.jitter and mixed.exp_backoff and mixed.label() == "fixed-jitter"
    assert Fixes.profile("legacy").with_changes(enable=["dedup_resume"]).label() == "legacy+dedup_resume"


@pytest.mark.parametrize("call, message", [
    (lambda: Fixes.profile("broken"), "unknown client profile 'broken'"),
    (lambda: Fixes().with_changes(enable=["jiter"]), "unknown fix 'jiter'"),
    (lambda: Fixes().with_changes(enable=["jitter"], disable=["jitter"]), "both enabled and disabled"),
    (lambda: ClientConfig(jitter="wild"), "ClientConfig.jitter"),
    (lambda: ClientConfig(base_delay=-1), "ClientConfig.base_delay"),
    (lambda: ClientConfig(base_delay=5, max_delay=1), "max_delay"),
    (lambda: ClientConfig(token_ttl=60, refresh_lead=60), "refresh_lead"),
    (lambda: ClientConfig(max_retries=0), "max_retries"),
])
def test_bad_configuration_names_the_field(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_scaled_divides_every_duration():
    c = ClientConfig(token_ttl=900, refresh_lead=60, max_delay=30).scaled(60)
    assert (c.token_ttl, c.refresh_lead, c.max_delay, c.max_retries) == (15, 1, 0.5, 5)


def test_unknown_event_is_refused():
    with pytest.raises(TypeError, match="not a client event"):
        make().handle("Start")


# ---- stable_socket / single_writer: what a token change does ----

def test_fixed_refreshes_in_band_on_the_same_socket():
    p = make("fixed", refresh_lead=10.0)
    sock = connected(p, ttl=100.0)
    assert p.drain_records() and p.handle(TimerFired(90.0, "refresh")) == [FetchToken(refresh=True)]
    assert p.handle(TimerFired(90.0, "refresh")) == []  # fired once; a stale repeat is ignored
    actions = p.handle(TokenResult(90.5, True, 200, "t1", 190.5))
    [timer] = of(actions, SetTimer)  # at a jittered half-life: 40-50% of the 100 s token's life
    assert timer.name == "refresh" and 130.5 <= timer.at <= 140.5
    sends = of(actions, Send)
    assert [s.frame["type"] for s in sends] == ["auth_refresh"] and sends[0].sock == sock
    assert sends[0].frame["token"] == "t1" and not of(actions, OpenSocket)


def test_a_short_server_ttl_does_not_make_refresh_a_tight_loop():
    p = make("legacy", refresh_lead=60.0)
    p.handle(Start(0.0))
    actions = p.handle(TokenResult(10.0, True, 200, "t", 20.0))  # the server says 10 s, lead is 60 s
    assert SetTimer("refresh", 15.0) in actions


def test_legacy_token_change_opens_a_second_socket_and_keeps_the_first():
    p = make("legacy", refresh_lead=10.0)
    first = connected(p, ttl=100.0)
    p.handle(TimerFired(90.0, "refresh"))
    actions = p.handle(TokenResult(90.5, True, 200, "t1", 190.5))
    assert not of(actions, CloseSocket)
    [opened] = of(actions, OpenSocket)
    p.handle(SocketOpened(91.0, opened.sock))
    assert set(p.live_sockets) == {first, opened.sock}
    # the server fans each message out to both sockets: the legacy client shows it twice
    shown = [of(p.handle(FrameReceived(92.0, s, msg(1))), Display) for s in (first, opened.sock)]
    assert shown[0] and shown[1]


def test_single_writer_closes_the_old_socket_before_opening_the_new():
    p = make("legacy", enable=["single_writer"], refresh_lead=10.0)
    first = connected(p, ttl=100.0)
    p.handle(TimerFired(90.0, "refresh"))
    actions = p.handle(TokenResult(90.5, True, 200, "t1", 190.5))
    kinds = [type(a) for a in actions if isinstance(a, (CloseSocket, OpenSocket))]
    assert kinds == [CloseSocket, OpenSocket] and actions[1].sock == first
    assert len(p.live_sockets) == 1


# ---- refresh_before_reconnect / exp_backoff / give-up ----

def test_legacy_reconnects_with_the_stale_token_and_gives_up_after_max_retries():
    p = make("legacy", max_retries=3, legacy_delay=1.0, think_time=5.0)
    sock = connected(p)
    now = 100.0
    actions = p.handle(SocketClosed(now, sock, 1006, "", "network"))
    for attempt in range(3):
        [timer] = of(actions, SetTimer)
        assert timer.at == pytest.approx(now + 1.0)  # the same short delay every time
        now = timer.at
        [opened] = of(p.handle(TimerFired(now, "reconnect")), OpenSocket)
        assert opened.token == "t0"  # the cached token, never refreshed
        actions = p.handle(HandshakeFailed(now, opened.sock, 403))
    assert of(actions, GiveUp) == [GiveUp("max_retries")]
    [restart] = of(actions, SetTimer)
    assert restart.name == "restart" and restart.at == pytest.approx(now + 5.0)
    # the user hard-refreshes: a new session logs in anew and its first attempt is n=0
    assert p.handle(TimerFired(restart.at, "restart")) == [FetchToken(refresh=False)]
    p.handle(TokenResult(restart.at, True, 200, "t9", restart.at + 900))
    records = p.drain_records()
    assert [r["n"] for r in records if r["kind"] == "attempt"] == [0, 1, 2, 3, 0]
    assert [r["kind"] for r in records].count("give_up") == 1


def test_fixed_refreshes_before_every_reconnect_and_never_gives_up():
    p = make("fixed", base_delay=1.0, max_delay=8.0)
    sock = connected(p)
    now = 100.0
    actions = p.handle(SocketClosed(now, sock, 1006, "", "network"))
    for _ in range(12):
        [timer] = of(actions, SetTimer)
        now = timer.at
        assert p.handle(TimerFired(now, "reconnect")) == [FetchToken(refresh=True)]
        actions = p.handle(TokenResult(now, False, 503))
        assert not of(actions, GiveUp)
    delays = [r["delay"] for r in p.drain_records() if r["kind"] == "backoff"]
    assert all(0 <= d <= 8.0 for d in delays) and len(delays) == 13


def test_capped_exponential_without_jitter_doubles_to_the_cap():
    p = make("fixed", disable=["jitter"], base_delay=1.0, max_delay=10.0)
    sock = connected(p)
    now, actions = 100.0, p.handle(SocketClosed(100.0, sock, 1006, "", "network"))
    for _ in range(6):
        now = of(actions, SetTimer)[0].at
        p.handle(TimerFired(now, "reconnect"))
        p.handle(TokenResult(now, True, 200, "t", now + 900))
        opened = p._current
        actions = [a for a in p.handle(HandshakeFailed(now, opened, 503)) if isinstance(a, SetTimer)]
    delays = [r["delay"] for r in p.drain_records() if r["kind"] == "backoff"]
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


@pytest.mark.parametrize("mode", ["full", "equal", "decorrelated"])
def test_jitter_spreads_a_fleet(mode):
    config = ClientConfig(jitter=mode, base_delay=1.0, max_delay=30.0)
    firsts = set()
    for seed in range(20):
        p = ClientPolicy(config, random.Random(seed), f"c{seed}")
        sock = connected(p)
        firsts.add(of(p.handle(SocketClosed(100.0, sock, 1006, "", "network")), SetTimer)[0].at)
    assert len(firsts) == 20


def test_attempt_counter_resets_after_a_stable_connection():
    p = make("fixed", stable_after=30.0)
    sock = connected(p)
    p.handle(SocketClosed(5.0, sock, 1006, "", "network"))            # short-lived: counts as a failure
    p.handle(TimerFired(100.0, "reconnect"))
    p.handle(TokenResult(100.0, True, 200, "t", 1000.0))
    second = p._current
    p.handle(SocketOpened(100.0, second))
    p.handle(SocketClosed(200.0, second, 1006, "", "network"))        # open 100 s: stable
    p.handle(TimerFired(300.0, "reconnect"))
    p.handle(TokenResult(300.0, True, 200, "t", 1000.0))
    assert [r["n"] for r in p.drain_records() if r["kind"] == "attempt"] == [0, 1, 1]


# ---- close-code hygiene ----

@pytest.mark.parametrize("code, expect", [
    (1000, "stop"), (4403, "give_up"), (1012, "restart"), (1013, "overload"), (4401, "refresh"), (1006, "backoff"),
])
def test_close_code_hygiene(code, expect):
    p = make("fixed", disable=["refresh_before_reconnect"], restart_window=10.0, overload_base=5.0,
             base_delay=1.0, max_delay=4.0)
    sock = connected(p)
    actions = p.handle(SocketClosed(100.0, sock, code, "", "server"))
    timers = [a for a in of(actions, SetTimer) if a.name == "reconnect"]
    if expect == "stop":
        assert actions == []
        return
    if expect == "give_up":
        assert of(actions, GiveUp) == [GiveUp("forbidden")]
        return
    [timer] = timers
    delay = timer.at - 100.0
    if expect == "restart":
        assert 0 <= delay <= 10.0
    elif expect == "overload":
        assert 5.0 <= delay <= 9.0
    else:
        assert 0 <= delay <= 4.0
    follow = p.handle(TimerFired(timer.at, "reconnect"))
    if expect == "refresh":
        assert follow == [FetchToken(refresh=True)]
    else:
        assert of(follow, OpenSocket) and of(follow, OpenSocket)[0].token == "t0"


@pytest.mark.parametrize("code", [1000, 4403, 1012, 1013, 4401])
def test_legacy_treats_every_close_the_same(code):
    p = make("legacy", legacy_delay=1.5)
    sock = connected(p)
    actions = p.handle(SocketClosed(100.0, sock, code, "", "server"))
    assert of(actions, SetTimer) == [SetTimer("reconnect", 101.5)] and not of(actions, GiveUp)


# ---- network awareness ----

def test_network_awareness_waits_offline_and_reconnects_when_back():
    p = make("fixed", disable=["jitter"])
    sock = connected(p)
    p.handle(NetworkOffline(50.0))
    assert p.handle(SocketClosed(50.0, sock, 1006, "", "network")) == []   # nothing scheduled offline
    actions = p.handle(NetworkOnline(80.0))
    assert of(actions, SetTimer) == [SetTimer("reconnect", 80.0)]        # promptly, no backoff


def test_network_awareness_cancels_a_pending_reconnect():
    p = make("fixed")
    sock = connected(p)
    p.handle(SocketClosed(50.0, sock, 1006, "", "network"))
    assert p.handle(NetworkOffline(50.5)) == [CancelTimer("reconnect")]


def test_without_network_awareness_attempts_go_on_offline():
    p = make("legacy")
    sock = connected(p)
    p.handle(NetworkOffline(50.0))
    actions = p.handle(SocketClosed(50.0, sock, 1006, "", "network"))
    assert of(actions, SetTimer)
    assert of(p.handle(TimerFired(actions[0].at, "reconnect")), OpenSocket)


# ---- dedup and resume ----

def test_dedup_drops_a_repeat_and_resume_asks_from_the_last_seq():
    p = make("fixed")
    sock = connected(p)
    for i in range(1, 7):
        p.handle(FrameReceived(0.5, sock, msg(i)))
    assert of(p.handle(FrameReceived(1.0, sock, msg(7))), Display)
    assert p.handle(FrameReceived(1.1, sock, msg(7))) == [DropDuplicate("m7")]
    p.handle(SocketClosed(2.0, sock, 1006, "", "network"))
    p.handle(TimerFired(40.0, "reconnect"))
    [opened] = of(p.handle(TokenResult(40.0, True, 200, "t1", 940.0)), OpenSocket)
    assert opened.last_seq == 7
    [resume] = of(p.handle(SocketOpened(40.1, opened.sock)), Send)
    assert resume.frame["type"] == "resume" and resume.frame["last_seq"] == 7 and resume.frame["v"] == "1.0"


def test_legacy_displays_repeats_and_does_not_resume():
    p = make("legacy")
    sock = connected(p)
    assert of(p.handle(FrameReceived(1.0, sock, msg(7))), Display)
    assert of(p.handle(FrameReceived(1.1, sock, msg(7))), Display)
    p.handle(SocketClosed(2.0, sock, 1006, "", "network"))
    [opened] = of(p.handle(TimerFired(3.0, "reconnect")), OpenSocket)
    assert opened.last_seq is None and not of(p.handle(SocketOpened(3.1, opened.sock)), Send)


def test_user_messages_wait_for_an_open_socket():
    p = make("fixed")
    p.handle(Start(0.0))
    assert p.handle(UserMessage(0.1, "hello")) == []
    [opened] = of(p.handle(TokenResult(0.2, True, 200, "t", 900.0)), OpenSocket)
    sends = of(p.handle(SocketOpened(0.3, opened.sock)), Send)
    assert [s.frame["type"] for s in sends] == ["resume", "user_message"]
    assert sends[1].frame["text"] == "hello"
    assert [r["kind"] for r in p.drain_records()].count("sent") == 1


# ---- listener cleanup and client metrics ----

def test_listener_count_grows_without_cleanup():
    counts = {}
    for profile in ("legacy", "fixed"):
        p = make(profile, enable=["exp_backoff"] if profile == "legacy" else ())
        sock = connected(p)
        now = 0.0
        for _ in range(20):
            now += 100.0
            actions = p.handle(SocketClosed(now, sock, 1006, "", "network"))
            timer = of(actions, SetTimer)[-1]
            actions = p.handle(TimerFired(timer.at, "reconnect"))
            if of(actions, FetchToken):
                actions = p.handle(TokenResult(timer.at, True, 200, "t", timer.at + 900))
            sock = of(actions, OpenSocket)[0].sock
            p.handle(SocketOpened(timer.at, sock))
        counts[profile] = p.listener_count
    assert counts == {"legacy": 21, "fixed": 1}


def test_client_metrics_only_with_the_fix():
    on, off = make("fixed"), make("fixed", disable=["client_metrics"])
    connected(on), connected(off)
    assert on.metrics == {"token": 1, "attempt": 1, "open": 1} and off.metrics == {}


def test_stop_closes_everything_and_cancels_timers():
    p = make("legacy", refresh_lead=10.0)
    first = connected(p, ttl=100.0)
    p.handle(TimerFired(90.0, "refresh"))
    second = of(p.handle(TokenResult(90.5, True, 200, "t1", 190.5)), OpenSocket)[0].sock
    actions = p.handle(Stop(95.0))
    assert sorted(a.sock for a in of(actions, CloseSocket)) == [first, second]
    assert CancelTimer("refresh") in actions and p.live_sockets == () and not p.active
