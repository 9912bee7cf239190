"""Regressions for the hardening issue: each attack here succeeded against the server before."""
from __future__ import annotations

import asyncio
import json
import socket

import aiohttp
import pytest
from websockets.exceptions import InvalidStatus

from tests.server.conftest import closed_code, recv_json


async def test_another_users_token_can_not_open_a_conversation(make_server):
    _, api = await make_server()
    bob = (await api.token("bob"))["access_token"]
    alice = (await api.token("alice"))["access_token"]
    async with api.connect("bobs-conv", bob) as bob_ws:
        assert (await recv_json(bob_ws))["type"] == "welcome"
        await bob_ws.send(json.dumps({"v": "1.0", "type": "user_message", "id": "b1", "text": "secret plans"}))
        while (await recv_json(bob_ws))["type"] != "assistant_message":
            pass
        async with api.connect("bobs-conv", alice) as ws:
            frame = await recv_json(ws)
            assert frame["type"] == "error" and frame["code"] == "forbidden_conversation"
            assert await closed_code(ws) == 4403
        async with api.connect("bobs-conv", bob) as again:  # the owner still gets in
            assert (await recv_json(again))["type"] == "welcome"
    stats = await api.stats()
    assert stats["connections_opened"] == 2


async def test_legacy_server_refuses_another_users_conversation_with_http_403(make_server):
    _, api = await make_server(legacy_traits=frozenset({"handshake_403"}))
    async with api.connect("bobs-conv", (await api.token("bob"))["access_token"]) as ws:
        assert (await recv_json(ws))["type"] == "welcome"
    with pytest.raises(InvalidStatus) as err:
        async with api.connect("bobs-conv", (await api.token("alice"))["access_token"]):
            pass
    assert err.value.response.status_code == 403


async def test_ownership_survives_a_restart(make_server, tmp_path):
    server, api = await make_server()
    async with api.connect("bobs-conv", (await api.token("bob"))["access_token"]) as ws:
        assert (await recv_json(ws))["type"] == "welcome"
    await server.shutdown()
    _, api2 = await make_server(db_path=server.config.db_path)
    async with api2.connect("bobs-conv", (await api2.token("alice"))["access_token"]) as ws:
        assert (await recv_json(ws))["code"] == "forbidden_conversation"
        assert await closed_code(ws) == 4403


@pytest.mark.parametrize("body", [
    b'{"user": "\xff\xfe"}',                      # invalid UTF-8
    b'[' * 30_000 + b']' * 30_000,           # nested past the recursion limit
    b'{"user": "\\ud800"}',                       # a lone surrogate
])
async def test_bad_token_bodies_are_400(make_server, http_session, body):
    _, api = await make_server()
    async with http_session.post(api.http_url + "/auth/token", data=body,
                                 headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400, await r.text()
        assert (await r.json())["error"] in ("invalid_json", "invalid_request")


async def test_lone_surrogate_refresh_token_is_400(make_server, http_session):
    _, api = await make_server()
    async with http_session.post(api.http_url + "/auth/refresh", data=b'{"refresh_token": "\\udfff"}',
                                 headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400


async def test_non_utf8_admin_key_is_403(make_server):
    _, api = await make_server()
    host, port = api.http_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /admin/stats HTTP/1.1\r\nHost: x\r\nX-Admin-Key: \xff\xfe\r\nConnection: close\r\n\r\n")
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    assert b" 403 " in status_line, status_line


async def test_lone_surrogate_auth_refresh_is_an_error_frame(make_server):
    _, api = await make_server(live_expiry=True)
    async with api.connect("c", (await api.token())["access_token"]) as ws:
        assert (await recv_json(ws))["type"] == "welcome"
        await ws.send('{"v": "1.0", "type": "auth_refresh", "id": "r1", "token": "\\ud800"}')
        frame = await recv_json(ws)
        assert frame["type"] == "error" and frame["code"] == "auth_invalid"
        await ws.send(json.dumps({"v": "1.0", "type": "user_message", "id": "m1", "text": "hi"}))
        assert (await recv_json(ws))["type"] == "ack"  # still open and served: not 1011


def test_a_malformed_handshake_does_not_log_the_token(spawn_serve):
    served = spawn_serve("--port", "0", "--http-port", "0")
    host, port = served.ws_url.removeprefix("ws://").split(":")
    secret = "eyJSECRETTOKENVALUE"
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(f"GET /ws/chat/c?token={secret} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())  # no Sec-WebSocket-Key
        sock.recv(4096)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(f"GET /ws/chat/c?token={secret} HTTP/1.1\r\nHost: x\r\n\x00bad\r\n\r\n".encode())
        sock.recv(4096)
    served.proc.terminate()
    served.proc.wait(10)
    text = served.log_path.read_text() + served.proc.stderr.read()
    assert secret not in text
    for line in served.log_path.read_text().splitlines():
        json.loads(line)  # every line one JSON object, no traceback text
    assert "Traceback" not in text
