"""The other direction of the ledger: a user message is acknowledged once stored (it survives
SIGKILL), a resend with the same id is acknowledged again but answered once; the legacy server
(`no_acks`) neither acknowledges nor drops resends."""
from __future__ import annotations

import json
import signal

import aiohttp

from tests.server.conftest import Api, recv_json, recv_until


def user_message(msg_id: str) -> str:
    return json.dumps({"v": "1.0", "type": "user_message", "id": msg_id, "text": "hello"})


async def test_a_stored_message_is_acked_and_a_resend_answered_once(make_server):
    _, api = await make_server()
    async with api.connect("conv", (await api.token())["access_token"]) as ws:
        assert (await recv_json(ws))["type"] == "welcome"
        await ws.send(user_message("u1"))
        assert await recv_json(ws) == {"v": "1.1", "type": "ack", "ref": "u1"}
        await recv_until(ws, "assistant_message")
    async with api.connect("conv", (await api.token())["access_token"]) as ws:  # reconnected: resent
        assert (await recv_json(ws))["type"] == "welcome"
        await ws.send(user_message("u1"))
        assert await recv_json(ws) == {"v": "1.1", "type": "ack", "ref": "u1"}
        await ws.send(json.dumps({"v": "1.0", "type": "ping"}))
        assert (await recv_json(ws))["type"] == "pong"  # no typing, no second answer before it
    _, log = await api.get("/admin/messages", admin=True)
    assert len(log["messages"]) == 1
    _, received = await api.get("/admin/user-messages", admin=True)
    assert [(m["conversation_id"], m["id"], m["answered"]) for m in received["messages"]] == [
        ("conv", "u1", True), ("conv", "u1", False)]


async def test_the_legacy_server_neither_acks_nor_drops_resends(make_server):
    _, api = await make_server(legacy_traits=frozenset({"no_acks"}))
    async with api.connect("conv", (await api.token())["access_token"]) as ws:
        assert (await recv_json(ws))["type"] == "welcome"
        for _ in range(2):
            await ws.send(user_message("u1"))
            assert (await recv_json(ws))["type"] == "chat_status"
            await recv_until(ws, "assistant_message")
    _, log = await api.get("/admin/messages", admin=True)
    assert len(log["messages"]) == 2  # answered twice
    _, received = await api.get("/admin/user-messages", admin=True)
    assert [m["answered"] for m in received["messages"]] == [True, True]


async def test_an_acked_message_survives_sigkill(spawn_serve, tmp_path):
    db = tmp_path / "s.db"
    first = spawn_serve("--admin-key", "k", "--db", str(db))
    async with aiohttp.ClientSession() as http:
        api = Api(first.http_url, first.ws_url, http, "k")
        async with api.connect("conv", (await api.token())["access_token"]) as ws:
            assert (await recv_json(ws))["type"] == "welcome"
            await ws.send(user_message("u1"))
            assert (await recv_json(ws))["type"] == "ack"
            first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        again = spawn_serve("--admin-key", "k", "--db", str(db))
        api = Api(again.http_url, again.ws_url, http, "k")
        _, received = await api.get("/admin/user-messages", admin=True)
    assert [m["id"] for m in received["messages"]] == ["u1"]
