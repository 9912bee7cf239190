"""Bounded per-connection memory: a client that stops reading can not make the server hold its
frames without bound, and is closed within the stated bound whatever the keepalive does."""
from __future__ import annotations

import asyncio
import json
import time

from tests.server.conftest import closed_code, recv_json, recv_until
from tests.server.rawclient import DeafClient

HISTORY, TEXT = 3000, "x" * 400  # ~1.3 MB of history: one replay overflows any socket buffer
RESUMES = 20


def _fill(server, conversation: str, count: int) -> None:
    store = server.state.store
    for i in range(count):
        store.append(conversation, f"h{i}", time.time(),
                     {"v": "1.0", "type": "assistant_message", "id": f"h{i}", "agent": "echo", "text": TEXT})


def _backlog(server) -> int:
    return sum(s.ws.transport.get_write_buffer_size() for s in server.state.sessions.values()
               if s.ws.transport is not None)


async def test_a_client_that_resumes_but_never_reads_is_bounded_and_closed(make_server):
    # no keepalive: only the send watchdog can close it (the keepalive's ping, once the backlog
    # had filled, waited for it to drain, so its timeout never started: the attack's outcome)
    server, api = await make_server(heartbeat_interval=None, send_timeout=1.0, close_timeout=0.5)
    token = (await api.token("mallory"))["access_token"]
    deaf = await asyncio.to_thread(DeafClient, api.ws_url, f"/ws/chat/loot?token={token}")
    _fill(server, "loot", HISTORY)
    started = time.monotonic()
    for i in range(RESUMES):
        await asyncio.to_thread(deaf.send, {"v": "1.0", "type": "resume", "id": f"r{i}", "last_seq": 0})
    peak = 0
    async with api.connect("other", (await api.token("bob"))["access_token"]) as bob:
        assert (await recv_json(bob))["type"] == "welcome"
        while server.state.sessions and time.monotonic() - started < 8:
            peak = max(peak, _backlog(server))
            await bob.send(json.dumps({"v": "1.0", "type": "user_message", "id": f"b{time.monotonic()}",
                                       "text": "still there?"}))
            await recv_until(bob, "assistant_message")  # another client keeps being served
            if len(server.state.sessions) == 1:  # only bob's left: the deaf one is gone
                break
            await asyncio.sleep(0.05)
        closed_after = time.monotonic() - started
        assert [s.user for s in server.state.sessions.values()] == ["bob"], "the deaf client is still open"
    assert closed_after < 1.0 + 0.25 + 0.5 + 1.5, closed_after  # send_timeout + a tick + close_timeout + slack
    assert peak <= server.config.max_send_buffer, peak
    assert await asyncio.to_thread(deaf.closed_by_server)
    deaf.close()
    stats = await api.stats()
    assert stats["closes_by_code"].get("1013") == 1, stats


async def test_a_backlog_past_the_limit_sheds_with_1013(make_server):
    server, api = await make_server(max_send_buffer=64 * 1024, replay_page=5000, close_timeout=0.5)
    token = (await api.token("mallory"))["access_token"]
    deaf = await asyncio.to_thread(DeafClient, api.ws_url, f"/ws/chat/loot?token={token}")
    _fill(server, "loot", HISTORY)
    # replay pages larger than the limit: once the kernel's buffers are full, a page overflows the backlog
    for i in range(4):
        await asyncio.to_thread(deaf.send, {"v": "1.0", "type": "resume", "id": f"r{i}", "last_seq": 0})
    deadline = time.monotonic() + 5
    while server.state.sessions and time.monotonic() < deadline:
        assert _backlog(server) <= 64 * 1024 + 1024
        await asyncio.sleep(0.02)
    assert not server.state.sessions
    deaf.close()
    assert (await api.stats())["closes_by_code"] == {"1013": 1}


async def test_resume_is_rate_limited_and_replays_everything_in_order(make_server):
    server, api = await make_server(resume_rate=0.1, resume_burst=2, replay_page=7)
    _fill(server, "mine", 50)
    async with api.connect("mine", (await api.token())["access_token"]) as ws:
        assert (await recv_json(ws))["type"] == "welcome"
        for i in range(2):
            await ws.send(json.dumps({"v": "1.0", "type": "resume", "id": f"r{i}", "last_seq": 10}))
            seqs = [(await recv_until(ws, "assistant_message"))["seq"] for _ in range(40)]
            assert seqs == list(range(11, 51))  # every page, in order
        await ws.send(json.dumps({"v": "1.0", "type": "resume", "id": "r2", "last_seq": 0}))
        frame = await recv_json(ws)
        assert frame["type"] == "error" and frame["code"] == "rate_limited" and frame["ref"] == "r2"
        await ws.send(json.dumps({"v": "1.0", "type": "ping"}))
        assert (await recv_json(ws))["type"] == "pong"  # the connection stays usable


async def test_live_messages_during_a_paged_replay_arrive_in_seq_order(make_server):
    server, api = await make_server(replay_page=3)
    _fill(server, "mine", 30)
    token = (await api.token())["access_token"]
    async with api.connect("mine", token) as reader, api.connect("mine", token) as writer:
        assert (await recv_json(reader))["type"] == "welcome"
        assert (await recv_json(writer))["type"] == "welcome"
        await reader.send(json.dumps({"v": "1.0", "type": "resume", "id": "r", "last_seq": 0}))
        for i in range(5):
            await writer.send(json.dumps({"v": "1.0", "type": "user_message", "id": f"w{i}", "text": "hi"}))
        seqs = [(await recv_until(reader, "assistant_message"))["seq"] for _ in range(35)]
        assert seqs == list(range(1, 36))


async def test_bounds_are_refused_when_not_positive(make_server):
    import pytest
    for field in ("max_send_buffer", "send_timeout", "replay_page", "resume_rate", "resume_burst"):
        with pytest.raises(ValueError, match=field):
            await make_server(**{field: 0})


async def test_a_reading_client_is_never_shed(make_server):
    server, api = await make_server(send_timeout=0.3)
    _fill(server, "mine", 2000)
    async with api.connect("mine", (await api.token())["access_token"]) as ws:
        assert (await recv_json(ws))["type"] == "welcome"
        await ws.send(json.dumps({"v": "1.0", "type": "resume", "id": "r", "last_seq": 0}))
        for seq in range(1, 2001):
            assert (await recv_until(ws, "assistant_message"))["seq"] == seq
    assert await closed_code(ws) == 1000
