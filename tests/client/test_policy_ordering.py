"""Display order with dedup_resume: a live message fanned out as soon as the socket is
registered can overtake the `resume` replay of earlier ones; the fixed client holds it
until the gap fills, for at most `reorder_hold`. Legacy shows frames as they come."""
from __future__ import annotations

import random

from hypothesis import given, settings, strategies as st

from system.client.policy import (
    CancelTimer, ClientConfig, ClientPolicy, Display, DropDuplicate, FetchToken, Fixes, FrameReceived, OpenSocket,
    SetTimer, SocketClosed, SocketOpened, Start, Stop, TimerFired, TokenResult,
)

HOLD = 5.0


def make(profile: str = "fixed") -> ClientPolicy:
    return ClientPolicy(ClientConfig(fixes=Fixes.profile(profile), reorder_hold=HOLD), random.Random(3), "c1")


def msg(seq: int) -> dict:
    return {"v": "1.0", "type": "assistant_message", "id": f"m{seq}", "seq": seq, "agent": "echo", "text": "x"}


def connected(p: ClientPolicy, now: float = 0.0) -> int:
    assert p.handle(Start(now)) == [FetchToken(refresh=False)]
    [opened] = [a for a in p.handle(TokenResult(now, True, 200, "t", now + 900)) if isinstance(a, OpenSocket)]
    p.handle(SocketOpened(now, opened.sock))
    return opened.sock


def shown(actions) -> list[int]:
    return [a.message["seq"] for a in actions if isinstance(a, Display)]


def test_a_live_message_ahead_of_the_replay_waits_for_it():
    p = make()
    sock = connected(p)
    assert shown(p.handle(FrameReceived(1.0, sock, msg(1)))) == [1]
    actions = p.handle(FrameReceived(1.1, sock, msg(5)))   # live, ahead of the replay of 2..4
    assert shown(actions) == [] and actions == [SetTimer("hold", 1.1 + HOLD)]
    assert shown(p.handle(FrameReceived(1.2, sock, msg(2)))) == [2]
    assert shown(p.handle(FrameReceived(1.2, sock, msg(3)))) == [3]
    actions = p.handle(FrameReceived(1.3, sock, msg(4)))
    assert shown(actions) == [4, 5] and CancelTimer("hold") in actions
    assert p.handle(FrameReceived(1.3, sock, msg(5))) == [DropDuplicate("m5")]  # the replay's copy
    assert p.last_seq == 5
    assert p.handle(TimerFired(1.1 + HOLD, "hold")) == []  # cancelled: a late firing is ignored


def test_resume_asks_from_the_last_seq_shown_in_order_so_the_gap_is_replayed():
    p = make()
    sock = connected(p)
    p.handle(FrameReceived(1.0, sock, msg(1)))
    p.handle(FrameReceived(1.1, sock, msg(4)))
    p.handle(SocketClosed(2.0, sock, 1006, "", "network"))
    p.handle(TimerFired(3.0, "reconnect"))
    [opened] = [a for a in p.handle(TokenResult(3.0, True, 200, "t1", 903.0)) if isinstance(a, OpenSocket)]
    assert opened.last_seq == 1


def test_hold_expiry_shows_what_is_held_in_order_and_records_the_gap():
    p = make()
    sock = connected(p)
    p.handle(FrameReceived(1.0, sock, msg(1)))
    p.handle(FrameReceived(1.1, sock, msg(6)))
    p.handle(FrameReceived(1.5, sock, msg(4)))   # still a gap (2, 3): keeps the first deadline
    p.drain_records()
    assert shown(p.handle(TimerFired(1.1 + HOLD, "hold"))) == [4, 6]
    gaps = [(r["from_seq"], r["to_seq"]) for r in p.drain_records() if r["kind"] == "gap"]
    assert gaps == [(2, 3), (5, 5)] and p.last_seq == 6
    # a straggler is still shown (late, not lost); the next in order goes straight through
    assert shown(p.handle(FrameReceived(9.0, sock, msg(2)))) == [2]
    assert shown(p.handle(FrameReceived(9.1, sock, msg(7)))) == [7]


def test_stop_shows_what_is_held():
    p = make()
    sock = connected(p)
    p.handle(FrameReceived(1.0, sock, msg(3)))
    actions = p.handle(Stop(2.0))
    assert shown(actions) == [3] and CancelTimer("hold") in actions


def test_legacy_shows_frames_as_they_come():
    p = make("legacy")
    sock = connected(p)
    assert [shown(p.handle(FrameReceived(1.0, sock, msg(s)))) for s in (1, 5, 2)] == [[1], [5], [2]]


@st.composite
def reconnect_stories(draw):
    """A client that has shown 1..base reconnects; the server's `resume` replays base+1..replay_to
    while live messages live_from..last arrive on the same socket, in any interleaving (each
    stream in its own order; a message in both is a duplicate to drop)."""
    base = draw(st.integers(0, 5))
    last = draw(st.integers(base, base + 15))
    live_from = draw(st.integers(base + 1, last + 1))
    replay_to = draw(st.integers(live_from - 1, last))
    replay = list(range(base + 1, replay_to + 1))
    live = list(range(live_from, last + 1))
    picks = draw(st.lists(st.booleans(), min_size=len(replay) + len(live), max_size=len(replay) + len(live)))
    order, r, l = [], 0, 0
    for take_live in picks:
        if (take_live and l < len(live)) or r == len(replay):
            order.append(live[l]); l += 1
        else:
            order.append(replay[r]); r += 1
    return base, last, order


@settings(max_examples=300, deadline=None)
@given(story=reconnect_stories())
def test_any_interleaving_of_replay_and_live_shows_each_message_once_in_order(story):
    base, last, order = story
    p = make()
    sock = connected(p)
    shown_seqs: list[int] = []
    for seq in range(1, base + 1):
        shown_seqs += shown(p.handle(FrameReceived(0.5, sock, msg(seq))))
    p.handle(SocketClosed(1.0, sock, 1006, "", "network"))
    p.handle(TimerFired(2.0, "reconnect"))
    [opened] = [a for a in p.handle(TokenResult(2.0, True, 200, "t1", 902.0)) if isinstance(a, OpenSocket)]
    assert opened.last_seq == base
    p.handle(SocketOpened(2.0, opened.sock))
    actions = []
    for i, seq in enumerate(order):  # all within the hold: nothing is given up
        actions += p.handle(FrameReceived(2.0 + i * HOLD / (2 * len(order)), opened.sock, msg(seq)))
    shown_seqs += shown(actions)
    assert shown_seqs == list(range(1, last + 1))  # strictly increasing, nothing lost, nothing twice
    hold_timers = [a for a in actions if isinstance(a, (SetTimer, CancelTimer)) and a.name == "hold"]
    assert not hold_timers or isinstance(hold_timers[-1], CancelTimer)  # nothing left waiting
