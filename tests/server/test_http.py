"""The HTTP API: auth, health, metrics, admin; bad input gets a 400 naming the field."""
from __future__ import annotations

import json

import pytest

from tests.server.conftest import recv_json, recv_until


async def test_token_and_refresh_rotation_with_reuse_detection(make_server):
    _, api = await make_server(token_ttl=900)
    status, first = await api.post("/auth/token", {"user": "alice", "secret": await api.secret("alice")})
    assert status == 200
    assert set(first) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert (first["token_type"], first["expires_in"]) == ("Bearer", 900)
    status, second = await api.post("/auth/refresh", {"refresh_token": first["refresh_token"]})
    assert status == 200 and second["refresh_token"] != first["refresh_token"]
    status, reused = await api.post("/auth/refresh", {"refresh_token": first["refresh_token"]})
    assert (status, reused["error"]) == (401, "auth_invalid")
    status, _ = await api.post("/auth/refresh", {"refresh_token": second["refresh_token"]})
    assert status == 401  # the whole family was revoked
    text = await api.metrics_text()
    for line in ('auth_refresh_total{result="ok"} 1.0', 'auth_refresh_total{result="reused"} 1.0',
                 'auth_refresh_total{result="revoked"} 1.0', "auth_tokens_issued_total 2.0"):
        assert line in text, line


@pytest.mark.parametrize("path, body, field", [
    ("/auth/token", {}, "user"),
    ("/auth/token", {"user": 7, "secret": "s"}, "user"),
    ("/auth/token", {"user": "", "secret": "s"}, "user"),
    ("/auth/token", ["alice"], "(body)"),
    ("/auth/token", {"user": "alice"}, "secret"),
    ("/auth/token", {"user": "alice", "secret": 7}, "secret"),
    ("/admin/users", {"users": "alice"}, "users"),
    ("/admin/users", {"users": []}, "users"),
    ("/admin/users", {"users": [""]}, "users"),
    ("/admin/users", {"users": [7]}, "users"),
    ("/auth/refresh", {"refresh": "x"}, "refresh_token"),
])
async def test_bad_auth_bodies_name_the_field(make_server, path, body, field):
    _, api = await make_server()
    status, error = await api.post(path, body, admin=path.startswith("/admin/"))
    assert status == 400
    assert f"field '{field}'" in error["message"]


async def test_a_token_needs_the_users_secret(make_server):
    _, api = await make_server()
    secret = await api.secret("alice")
    for body in ({"user": "alice", "secret": "guess"}, {"user": "nobody", "secret": secret},
                 {"user": "alice", "secret": ""}):
        status, error = await api.post("/auth/token", body)
        assert (status, error["error"]) == (401, "bad_credentials"), body
    assert (await api.post("/auth/token", {"user": "alice", "secret": secret}))[0] == 200
    # a new secret replaces the old one
    status, again = await api.post("/admin/users", {"users": ["alice"]}, admin=True)
    assert status == 200 and again["users"]["alice"] != secret
    assert (await api.post("/auth/token", {"user": "alice", "secret": secret}))[0] == 401
    assert (await api.post("/auth/token", {"user": "alice", "secret": again["users"]["alice"]}))[0] == 200
    # creating users is an admin call
    assert (await api.post("/admin/users", {"users": ["eve"]}))[0] == 403


async def test_body_that_is_not_json(make_server, http_session):
    _, api = await make_server()
    async with http_session.post(api.http_url + "/auth/token", data=b"{nope",
                                 headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400
        assert (await r.json())["error"] == "invalid_json"


async def test_auth_outage_answers_503_then_recovers(make_server):
    _, api = await make_server()
    pair = await api.token()
    assert (await api.post("/admin/auth-outage", {"enabled": True}, admin=True))[0] == 200
    assert (await api.post("/auth/token", {"user": "bob", "secret": "any"}))[0] == 503
    assert (await api.post("/auth/refresh", {"refresh_token": pair["refresh_token"]}))[0] == 503
    assert (await api.stats())["auth_outage"] is True
    await api.post("/admin/auth-outage", {"enabled": False}, admin=True)
    assert (await api.post("/auth/refresh", {"refresh_token": pair["refresh_token"]}))[0] == 200  # not spent by the outage
    assert 'auth_refresh_total{result="outage"} 1.0' in await api.metrics_text()


@pytest.mark.parametrize("method, path", [
    ("post", "/admin/expire-tokens"), ("post", "/admin/auth-outage"), ("post", "/admin/drop"),
    ("get", "/admin/stats"), ("get", "/admin/messages"),
])
async def test_admin_needs_the_key(make_server, http_session, method, path):
    _, api = await make_server()
    for headers in ({}, {"X-Admin-Key": "wrong"}):
        async with getattr(http_session, method)(api.http_url + path, headers=headers) as r:
            assert r.status == 403


@pytest.mark.parametrize("body, field", [
    ({"fraction": 1.5}, "fraction"), ({"fraction": "half"}, "fraction"), ({}, "fraction"),
    ({"fraction": 0.5, "code": 1006}, "code"), ({"fraction": 0.5, "seed": "x"}, "seed"),
])
async def test_drop_validates_its_body(make_server, body, field):
    _, api = await make_server()
    status, error = await api.post("/admin/drop", body, admin=True)
    assert status == 400 and f"field '{field}'" in error["message"]


async def test_auth_outage_needs_a_boolean(make_server):
    _, api = await make_server()
    status, error = await api.post("/admin/auth-outage", {"enabled": 1}, admin=True)
    assert status == 400 and "field 'enabled'" in error["message"]


async def test_healthz_and_stats(make_server):
    _, api = await make_server()
    status, health = await api.get("/healthz")
    assert (status, health["status"]) == (200, "ok")
    stats = await api.stats()
    for key in ("connections_active", "connections_opened", "handshakes", "pid"):
        assert isinstance(stats[key], int)


async def test_delivery_log_since_seq_by_conversation(make_server):
    _, api = await make_server()
    tok = (await api.token())["access_token"]
    for conv in ("a", "b"):
        async with api.connect(conv, tok) as ws:
            await recv_json(ws)
            for i in range(3):
                await ws.send(json.dumps({"v": "1.0", "type": "user_message", "id": f"{conv}{i}", "text": "x"}))
                await recv_until(ws, "assistant_message")
    _, everything = await api.get("/admin/messages", admin=True)
    assert len(everything["messages"]) == 6
    assert all(isinstance(m["t"], float) and m["t"] > 1e9 for m in everything["messages"])
    _, later = await api.get("/admin/messages", admin=True, params={"since_seq_by_conversation": json.dumps({"a": 2})})
    assert sorted((m["conversation_id"], m["seq"]) for m in later["messages"]) == \
        [("a", 3), ("b", 1), ("b", 2), ("b", 3)]
    status, error = await api.get("/admin/messages", admin=True, params={"since_seq_by_conversation": "[1]"})
    assert status == 400 and "since_seq_by_conversation" in error["message"]


async def test_logs_are_json_lines_without_secrets(make_server, tmp_path):
    _, api = await make_server()
    pair = await api.token("alice")
    _, fresh = await api.post("/auth/refresh", {"refresh_token": pair["refresh_token"]})
    async with api.connect("c", fresh["access_token"]) as ws:
        await recv_json(ws)
    async with api.connect("c", "forged.token.value") as ws:
        await recv_json(ws)
    log_text = (tmp_path / "server.log.jsonl").read_text()
    events = [json.loads(line) for line in log_text.splitlines()]
    assert {"token_issued", "open", "close"} <= {e["event"] for e in events}
    for secret in (pair["access_token"], pair["refresh_token"], fresh["access_token"], fresh["refresh_token"],
                   "forged.token.value", "test-admin-key"):
        assert secret not in log_text
