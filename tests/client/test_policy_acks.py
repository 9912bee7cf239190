"""The fixed client keeps a user message until the server acknowledges it and resends it, with
its id, on the next socket; the legacy client sends once and forgets."""
from __future__ import annotations

import pandas as pd

from formats.record.ledger import check_user_messages, connected_at_end
from system.client.policy import (
    FetchToken, FrameReceived, OpenSocket, Send, SocketClosed, SocketOpened, TimerFired, TokenResult, UserMessage,
)
from tests.client.test_policy_fixes import connected, make, of


def reconnect(p, now: float) -> list:
    """After a drop: run the timers and token fetches the policy asks for until a socket opens."""
    actions = p.handle(SocketClosed(now, p._current, 1006, "", "network"))
    for _ in range(5):
        timers = [a for a in actions if type(a).__name__ == "SetTimer"]
        opens = of(actions, OpenSocket)
        if opens:
            return p.handle(SocketOpened(now, opens[0].sock))
        if of(actions, FetchToken):
            actions = p.handle(TokenResult(now, True, 200, "t1", now + 900))
        elif timers:
            now = timers[0].at
            actions = p.handle(TimerFired(now, timers[0].name))
    raise AssertionError(f"no socket opened: {actions}")


def user_sends(actions) -> list[str]:
    return [a.frame["id"] for a in of(actions, Send) if a.frame["type"] == "user_message"]


def test_the_fixed_client_resends_what_was_not_acked():
    p = make("fixed")
    sock = connected(p)
    first = user_sends(p.handle(UserMessage(1.0, "one")))
    second = user_sends(p.handle(UserMessage(1.1, "two")))
    p.handle(FrameReceived(1.2, sock, {"v": "1.1", "type": "ack", "ref": first[0]}))
    again = reconnect(p, 2.0)
    assert user_sends(again) == second  # the unacked one, same id; the acked one not
    assert [r["kind"] for r in p.drain_records() if r.get("msg_id") == second[0]] == ["sent", "resent"]


def test_the_legacy_client_sends_once():
    p = make("legacy")
    connected(p)
    assert user_sends(p.handle(UserMessage(1.0, "one")))
    assert user_sends(reconnect(p, 2.0)) == []


def test_user_ledger_counts_lost_and_duplicated():
    typed = pd.DataFrame({"client": ["a", "a", "b", "b"], "msg_id": ["a-1", "a-2", "b-1", "b-2"],
                          "t": [1.0, 2.0, 1.0, 99.5]})
    received = pd.DataFrame({"conversation": ["ca", "ca", "ca"], "msg_id": ["a-1", "a-1", "b-1"],
                             "t": [1.1, 3.0, 1.2], "answered": [1, 1, 1]})
    connections = pd.DataFrame({"client": ["a", "b"], "conn": ["1", "1"], "opened_s": [0.0, 0.0],
                                "duration_s": [100.0, 100.0], "censored": [1, 1], "http_status": [None, None]})
    summary = check_user_messages(typed, received, connected_at_end(connections), in_flight_s=1.0)
    # a-2 never arrived (lost); b-2 typed in the last second (indeterminate); a-1 answered twice
    assert (summary.sent, summary.lost, summary.indeterminate, summary.duplicated) == (4, 1, 1, 1)
