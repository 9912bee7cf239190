"""The other direction of the ledger: a user message is acknowledged once stored (it survives
SIGKILL), a resend with the same id is acknowledged again but answered once; one acked and not yet
answered when the server is killed is answered by the next start; the legacy server (`no_acks`)
neither acknowledges nor drops resends."""
from __future__ import annotations

import asyncio
import json
import os
import select
import signal

import aiohttp

from system.server.store import Store
from tests.server.backends import Gate
from tests.server.conftest import Api, recv_json, recv_until


def user_message(msg_id: str, text: str = "hello") -> str:
    return json.dumps({"v": "1.0", "type": "user_message", "id": msg_id, "text": text})


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


async def test_a_resend_while_the_first_is_being_answered_is_acked_not_answered(make_server):
    gate = Gate()
    _, api = await make_server(agent=gate)
    token = (await api.token())["access_token"]
    async with api.connect("conv", token) as first, api.connect("conv", token) as second:
        for ws in (first, second):
            assert (await recv_json(ws))["type"] == "welcome"
        await first.send(user_message("u1"))
        assert (await recv_json(first))["type"] == "ack"
        assert await asyncio.to_thread(gate.entered.wait, 10)  # the agent is answering u1
        await second.send(user_message("u1"))  # e.g. resent on a new socket while the old one hangs
        assert await recv_until(second, "ack") == {"v": "1.1", "type": "ack", "ref": "u1"}
        gate.release.set()
        await recv_until(second, "assistant_message")
        await second.send(json.dumps({"v": "1.0", "type": "ping"}))
        assert (await recv_until(second, "pong"))["type"] == "pong"
    _, log = await api.get("/admin/messages", admin=True)
    assert len(log["messages"]) == 1
    _, received = await api.get("/admin/user-messages", admin=True)
    assert [m["answered"] for m in received["messages"]] == [True, False]


async def test_what_a_start_owes_is_answered_once_even_when_resent_meanwhile(make_server, tmp_path):
    """Two messages acked and never answered by a previous process: while the start answers the
    first, the client resends both; each is answered exactly once."""
    db = tmp_path / "owed.db"
    store = Store(db)
    store.claim("conv", "alice")
    for msg_id in ("u1", "u2"):
        store.receive("conv", msg_id, 1.0, f"text of {msg_id}", "1.0")
    store.close()
    gate = Gate()
    _, api = await make_server(agent=gate, db_path=db)
    assert await asyncio.to_thread(gate.calls.acquire, timeout=10)  # the start is answering u1
    async with api.connect("conv", (await api.token())["access_token"]) as ws:
        assert (await recv_json(ws))["type"] == "welcome"
        for msg_id in ("u1", "u2"):  # the client's resends after its reconnect
            await ws.send(user_message(msg_id, f"text of {msg_id}"))
            assert await recv_until(ws, "ack") == {"v": "1.1", "type": "ack", "ref": msg_id}
        assert await asyncio.to_thread(gate.calls.acquire, timeout=10)  # u2, answered as a resend
        gate.release.set()
        answers = [(await recv_until(ws, "assistant_message"))["text"] for _ in range(2)]
    assert sorted(answers) == ["text of u1", "text of u2"]
    _, log = await api.get("/admin/messages", admin=True)
    assert len(log["messages"]) == 2  # the start, reaching u2, found it answered
    _, received = await api.get("/admin/user-messages", admin=True)
    assert sorted((m["id"], m["answered"]) for m in received["messages"]) == [
        ("u1", False), ("u1", True), ("u2", False), ("u2", True)]


def _agent_asked(fifo: int, timeout: float = 15.0) -> str:
    """The conversation the stalling agent was asked about (its line in the FIFO), awaited."""
    readable, _, _ = select.select([fifo], [], [], timeout)
    assert readable, "the agent was never asked"
    line = b""
    while not line.endswith(b"\n"):
        line += os.read(fifo, 1)
    return line.decode().strip()


async def _answer_of(api: Api, user: str, conversation: str) -> dict:
    """Open `conversation` as `user`, resume from 0 and return the first assistant message
    (replayed from the log, or fanned out live if the answer is logged meanwhile)."""
    async with api.connect(conversation, (await api.token(user))["access_token"]) as ws:
        assert (await recv_json(ws))["type"] == "welcome"
        await ws.send(json.dumps({"v": "1.0", "type": "resume", "id": "r1", "last_seq": 0}))
        return await recv_until(ws, "assistant_message", timeout=15)


async def test_a_message_acked_but_not_answered_when_killed_is_answered_after_the_restart(spawn_serve, tmp_path):
    """SIGKILL while the agent is answering two acked messages; the next start answers what it
    owes, oldest first and at most --answer-unanswered of them, the one after that the rest."""
    db, fifo_path = tmp_path / "s.db", tmp_path / "agent.fifo"
    os.mkfifo(fifo_path)
    fifo = os.open(fifo_path, os.O_RDWR)  # read and write ends: the agent's open never blocks
    try:
        first = spawn_serve("--admin-key", "k", "--db", str(db), "--agent", "tests.server.backends:Stall",
                            env={"STORMBENCH_TEST_AGENT_FIFO": str(fifo_path)})
        async with aiohttp.ClientSession() as http:
            api, sockets = Api(first.http_url, first.ws_url, http, "k"), []
            for user, conversation, text in (("alice", "conv-a", "first"), ("bob", "conv-b", "second")):
                sockets.append(ws := await api.connect(conversation, (await api.token(user))["access_token"]))
                assert (await recv_json(ws))["type"] == "welcome"
                await ws.send(json.dumps({"v": "1.0", "type": "user_message", "id": f"{user}-1", "text": text}))
                assert await recv_json(ws) == {"v": "1.1", "type": "ack", "ref": f"{user}-1"}
                assert _agent_asked(fifo) == conversation  # stored, acked, and in the agent's hands
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait(10)
            for ws in sockets:
                await ws.wait_closed()

            again = spawn_serve("--admin-key", "k", "--db", str(db), "--answer-unanswered", "1")
            api = Api(again.http_url, again.ws_url, http, "k")
            answer = await _answer_of(api, "alice", "conv-a")
            assert (answer["text"], answer["seq"]) == ("first", 1)  # the echo agent, on the stored text
            _, received = await api.get("/admin/user-messages", admin=True)
            assert [(m["id"], m["answered"]) for m in received["messages"]] == [("alice-1", True), ("bob-1", False)]
            again.proc.terminate()
            again.proc.wait(10)

            third = spawn_serve("--admin-key", "k", "--db", str(db))
            api = Api(third.http_url, third.ws_url, http, "k")
            assert (await _answer_of(api, "bob", "conv-b"))["text"] == "second"
            _, log = await api.get("/admin/messages", admin=True)
            assert sorted(m["conversation_id"] for m in log["messages"]) == ["conv-a", "conv-b"]  # each once
    finally:
        os.close(fifo)
