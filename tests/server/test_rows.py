"""Rows one user can make the server keep: conversations per user and messages per conversation
are bounded, so a client that talks forever, or opens a new conversation on every connect, cannot
grow the server's SQLite without bound (the rate limits bound only how fast it grows)."""
from __future__ import annotations

import json

import pytest

from tests.server.conftest import closed_code, recv_json, recv_until


def _rows(server, sql: str, *args) -> int:
    return server.state.store.db.execute(sql, args).fetchone()[0]


async def test_a_user_past_its_conversation_limit_gets_4403_and_no_row(make_server):
    server, api = await make_server(conversations_per_user=3)
    token = (await api.token("mallory"))["access_token"]
    for i in range(3):
        async with api.connect(f"c{i}", token) as ws:
            assert (await recv_json(ws))["type"] == "welcome"
    async with api.connect("c3", token) as ws:
        frame = await recv_json(ws)
        assert frame["type"] == "error" and frame["code"] == "conversation_limit", frame
        assert await closed_code(ws) == 4403
    assert _rows(server, "SELECT COUNT(*) FROM conversations WHERE owner=?", "mallory") == 3
    async with api.connect("c1", token) as ws:  # a conversation already opened still opens
        assert (await recv_json(ws))["type"] == "welcome"
    async with api.connect("b0", (await api.token("bob"))["access_token"]) as ws:  # another user is not limited
        assert (await recv_json(ws))["type"] == "welcome"


async def test_the_limit_holds_across_a_restart(make_server, tmp_path):
    db = tmp_path / "rows.db"
    server, api = await make_server(conversations_per_user=2, db_path=db)
    token = (await api.token("mallory"))["access_token"]
    for i in range(2):
        async with api.connect(f"c{i}", token) as ws:
            assert (await recv_json(ws))["type"] == "welcome"
    await server.shutdown()
    server, api = await make_server(conversations_per_user=2, db_path=db)
    async with api.connect("c2", (await api.token("mallory"))["access_token"]) as ws:
        assert (await recv_json(ws))["code"] == "conversation_limit"


async def test_a_conversation_keeps_its_last_history_limit_messages(make_server):
    server, api = await make_server(history_limit=5)
    async with api.connect("mine", (await api.token())["access_token"]) as ws:
        assert (await recv_json(ws))["type"] == "welcome"
        seqs = []
        for i in range(9):
            await ws.send(json.dumps({"v": "1.0", "type": "user_message", "id": f"m{i}", "text": f"hi {i}"}))
            seqs.append((await recv_until(ws, "assistant_message"))["seq"])
        assert seqs == list(range(1, 10))  # seqs go on; only what is kept shrinks
        await ws.send(json.dumps({"v": "1.0", "type": "resume", "id": "r", "last_seq": 0}))
        replayed = [(await recv_until(ws, "assistant_message"))["seq"] for _ in range(5)]
    assert replayed == [5, 6, 7, 8, 9]
    assert _rows(server, "SELECT COUNT(*) FROM messages WHERE conversation_id='mine'") == 5
    assert _rows(server, "SELECT COUNT(*) FROM user_messages WHERE conversation_id='mine'") == 5


@pytest.mark.parametrize("field", ["history_limit", "conversations_per_user"])
async def test_row_limits_are_refused_when_not_positive(make_server, field):
    with pytest.raises(ValueError, match=field):
        await make_server(**{field: 0})
