"""Tokens: a revoked refresh family takes its access tokens with it, token requests are rate
limited per user and per address (across a restart too), and expired refresh rows do not pile up."""
from __future__ import annotations

import json

import aiohttp

from system.server.auth import PRUNE_EVERY, TokenService
from system.server.ratelimit import KeyedLimiter, Rate
from system.server.store import Store
from tests.server.conftest import Api, closed_code, recv_json
from tests.server.test_auth import Clock, login


async def _reuse(api, pair: dict) -> dict:
    """Rotate once, then present the spent refresh token again: the family is revoked."""
    status, second = await api.post("/auth/refresh", {"refresh_token": pair["refresh_token"]})
    assert status == 200
    status, body = await api.post("/auth/refresh", {"refresh_token": pair["refresh_token"]})
    assert (status, body["error"]) == (401, "auth_invalid")
    return second


async def test_a_revoked_family_takes_its_access_tokens_at_the_handshake(make_server):
    _, api = await make_server()
    first = await api.token("alice")
    second = await _reuse(api, first)
    for token in (first["access_token"], second["access_token"]):
        async with api.connect("conv", token) as ws:
            frame = await recv_json(ws)
            assert (frame["type"], frame["code"]) == ("error", "auth_invalid"), frame
            assert await closed_code(ws) == 4401
    async with api.connect("conv", (await api.token("alice"))["access_token"]) as ws:  # a new login works
        assert (await recv_json(ws))["type"] == "welcome"


async def test_a_revoked_family_closes_its_live_sessions(make_server):
    _, api = await make_server(live_expiry=True, expiry_grace=0.3)
    first = await api.token("alice")
    other = await api.token("alice")  # another device: another family
    async with api.connect("conv", first["access_token"]) as ws, api.connect("conv", other["access_token"]) as ok:
        assert (await recv_json(ws))["type"] == "welcome"
        assert (await recv_json(ok))["type"] == "welcome"
        second = await _reuse(api, first)
        # a token of the revoked family does not save the session ...
        await ws.send(json.dumps({"v": "1.0", "type": "auth_refresh", "id": "r", "token": second["access_token"]}))
        assert (await recv_json(ws))["code"] == "auth_invalid"
        frame = await recv_json(ws, timeout=3)
        assert (frame["type"], frame["code"]) == ("error", "auth_expired")
        assert await closed_code(ws) == 4401
        # ... and the other family's session is untouched
        await ok.send(json.dumps({"v": "1.0", "type": "ping"}))
        assert (await recv_json(ok))["type"] == "pong"


async def test_token_requests_are_rate_limited_per_user(make_server):
    _, api = await make_server(auth_user_rate=0.01, auth_user_burst=2)
    secret = await api.secret("alice")
    for _ in range(2):
        assert (await api.post("/auth/token", {"user": "alice", "secret": secret}))[0] == 200
    async with api.session.post(api.http_url + "/auth/token", json={"user": "alice", "secret": secret}) as r:
        assert r.status == 429
        assert int(r.headers["Retry-After"]) >= 1
        assert (await r.json())["error"] == "rate_limited"
    pair = await api.token("bob")  # another user is not held up
    status, _ = await api.post("/auth/refresh", {"refresh_token": pair["refresh_token"]})
    assert status == 200
    status, _ = await api.post("/auth/refresh", {"refresh_token": pair["refresh_token"]})
    assert status == 429  # bob's third token request: limited before the (reused) token is even looked at
    assert 'auth_refresh_total{result="rate_limited"} 1.0' in await api.metrics_text()


async def test_token_requests_are_rate_limited_per_address(make_server):
    _, api = await make_server(auth_address_rate=0.01, auth_address_burst=3)
    users = [f"u{i}" for i in range(4)]
    status, body = await api.post("/admin/users", {"users": users}, admin=True)
    statuses = [(await api.post("/auth/token", {"user": u, "secret": body["users"][u]}))[0] for u in users]
    assert statuses == [200, 200, 200, 429]
    # a wrong guess counts too: guessing secrets from one address is bounded
    assert (await api.post("/auth/token", {"user": "u0", "secret": "guess"}))[0] == 429
    assert (await api.stats())["auth_rate_limited"] == 2


def test_expired_refresh_rows_are_pruned(tmp_path):
    clock = Clock()
    tokens = TokenService(Store(tmp_path / "a.db"), secret=None, access_ttl=1, refresh_ttl=10, clock=clock)
    for _ in range(50):
        login(tokens, "alice")
    assert tokens.store.refresh_rows() == 50
    clock.now += max(10, PRUNE_EVERY) + 1
    login(tokens, "alice")
    assert tokens.store.refresh_rows() == 1


def test_pruning_keeps_what_is_still_valid_and_revoked(tmp_path):
    clock = Clock()
    tokens = TokenService(Store(tmp_path / "a.db"), secret=None, access_ttl=1, refresh_ttl=100, clock=clock)
    old = login(tokens, "alice")
    clock.now += 50
    fresh = tokens.refresh(login(tokens, "bob")["refresh_token"])
    clock.now += 60  # old's refresh token has expired, fresh's has not
    assert tokens.prune() == 1  # old's; bob's spent one lives on until it expires (reuse detection)
    assert tokens.owner(old["refresh_token"]) is None
    assert tokens.refresh(fresh["refresh_token"])["access_token"]


async def test_a_restart_does_not_hand_a_limited_user_a_fresh_burst(spawn_serve, tmp_path):
    """The auth buckets are kept in the server's SQLite: limited before a restart, limited after."""
    db, flags = tmp_path / "s.db", ("--auth-user-rate", "0.01", "--auth-user-burst", "2")
    first = spawn_serve("--admin-key", "k", "--db", str(db), *flags)
    async with aiohttp.ClientSession() as http:
        api = Api(first.http_url, first.ws_url, http, "k")
        secret = await api.secret("alice")
        statuses = [(await api.post("/auth/token", {"user": "alice", "secret": secret}))[0] for _ in range(3)]
        assert statuses == [200, 200, 429]
        first.proc.terminate()
        first.proc.wait(10)
        again = spawn_serve("--admin-key", "k", "--db", str(db), *flags)
        api = Api(again.http_url, again.ws_url, http, "k")
        assert (await api.post("/auth/token", {"user": "alice", "secret": secret}))[0] == 429
        assert (await api.post("/auth/token", {"user": "bob", "secret": await api.secret("bob")}))[0] == 200


def test_stored_buckets_are_restored_and_dropped_once_full(tmp_path):
    limits = KeyedLimiter(Rate(per_s=1.0, burst=2))
    store = Store(tmp_path / "s.db")
    for _ in range(3):
        limits.take("alice", 100.0)  # drained: full again at 102
    limits.take("bob", 100.0)  # one left: full again at 101
    store.save_buckets("user", [(k, tokens, last, limits.full_at(tokens, last)) for k, tokens, last in limits.changed()],
                       now=100.0)
    assert limits.changed() == []  # nothing taken since
    assert sorted(k for k, *_ in store.buckets("user", 100.5)) == ["alice", "bob"]
    assert [k for k, *_ in store.buckets("user", 101.5)] == ["alice"]
    again = KeyedLimiter(Rate(per_s=1.0, burst=2))
    again.restore(store.buckets("user", 100.5))
    assert again.take("alice", 100.5) == 0.5  # still drained: half a token back
    store.save_buckets("user", [], now=102.0)
    assert store.buckets("user", 0.0) == []  # both full by 102: forgotten
    store.close()
