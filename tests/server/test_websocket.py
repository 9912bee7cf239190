"""The WebSocket endpoint over real loopback sockets, fixed and legacy behaviour."""
from __future__ import annotations

import asyncio
import json
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from system.contracts import validator
from tests.server.backends import Failing, Gate, Malformed, TwoReplies
from tests.server.conftest import closed_code, eventually, recv_json, recv_until
from tests.server.rawclient import DeafClient


def user_message(i: int | str, text: str = "hello") -> str:
    return json.dumps({"v": "1.0", "type": "user_message", "id": f"m{i}", "text": text})


def valid(frame: dict) -> dict:
    validator("ws", frame["v"], frame["type"]).validate(frame)
    return frame


async def test_valid_token_gets_a_welcome(make_server):
    _, api = await make_server()
    tok = await api.token("alice")
    async with api.connect("conv-1", tok["access_token"]) as ws:
        welcome = valid(await recv_json(ws))
        assert welcome["type"] == "welcome"
        assert (welcome["conversation_id"], welcome["last_seq"]) == ("conv-1", 0)
        stats = await api.stats()
        assert (stats["connections_active"], stats["connections_opened"]) == (1, 1)


async def test_user_message_gets_typing_then_a_logged_reply(make_server):
    agent = TwoReplies()
    _, api = await make_server(agent=agent)
    tok = await api.token()
    async with api.connect("conv-1", tok["access_token"]) as ws:
        await recv_json(ws)
        await ws.send(user_message(1, "2 bed flat"))
        ack = valid(await recv_json(ws))  # stored before it is answered (contract v1.1)
        frames = [valid(await recv_json(ws)) for _ in range(3)]
    assert ack == {"v": "1.1", "type": "ack", "ref": "m1"}
    assert [f["type"] for f in frames] == ["chat_status", "assistant_message", "assistant_message"]
    assert frames[0]["status"] == "typing"
    assert [f["seq"] for f in frames[1:]] == [1, 2]
    assert frames[2]["actions"] == [{"type": "show_listings", "listings": []}]
    assert all("meta" not in f for f in frames)
    assert agent.calls == [("conv-1", "2 bed flat", "1.0")]
    _, log = await api.get("/admin/messages", admin=True)
    assert [(m["conversation_id"], m["id"], m["seq"]) for m in log["messages"]] == \
        [("conv-1", frames[1]["id"], 1), ("conv-1", frames[2]["id"], 2)]


@pytest.mark.parametrize("token", [None, "garbage", "expired"])
async def test_fixed_server_answers_a_bad_token_with_error_then_4401(make_server, token):
    _, api = await make_server(token_ttl=0.2)
    if token == "expired":
        token = (await api.token())["access_token"]
        await asyncio.sleep(0.3)  # the token must really age past its TTL
    async with api.connect("conv-1", token) as ws:
        error = valid(await recv_json(ws))
        assert error["type"] == "error"
        assert error["code"] == ("auth_expired" if token and "." in token else "auth_invalid")
        assert await closed_code(ws) == 4401
    assert (await api.stats())["connections_opened"] == 0


@pytest.mark.parametrize("traits", [frozenset({"handshake_403"}), None])
async def test_legacy_server_answers_an_expired_token_with_http_403(make_server, traits):
    from system.server.config import LEGACY_TRAITS
    _, api = await make_server(token_ttl=0.3, legacy_traits=traits or frozenset(LEGACY_TRAITS))
    expired = (await api.token())["access_token"]
    await asyncio.sleep(0.4)  # the token must really age past its TTL
    with pytest.raises(InvalidStatus) as err:
        async with api.connect("conv-1", expired):
            pass
    assert err.value.response.status_code == 403
    async with api.connect("conv-1", (await api.token())["access_token"]) as ws:  # a fresh one is accepted
        assert (await recv_json(ws))["type"] == "welcome"
    assert 'ws_handshake_rejections_total{status="403"} 1.0' in await api.metrics_text()


async def test_unknown_path_is_404(make_server):
    _, api = await make_server()
    with pytest.raises(InvalidStatus) as err:
        async with api.connect("bad/../path", "x"):
            pass
    assert err.value.response.status_code == 404


async def test_forbidden_origin(make_server):
    _, api = await make_server(allowed_origins=("https://app.example",))
    token = (await api.token())["access_token"]
    async with api.connect("c", token, origin="https://app.example") as ws:
        assert (await recv_json(ws))["type"] == "welcome"
    async with api.connect("c", token, origin="https://evil.example") as ws:
        assert (await recv_json(ws))["code"] == "forbidden_origin"
        assert await closed_code(ws) == 4403
    _, legacy = await make_server(allowed_origins=("https://app.example",), legacy_traits=frozenset({"handshake_403"}))
    token = (await legacy.token())["access_token"]
    with pytest.raises(InvalidStatus) as err:
        async with legacy.connect("c", token, origin="https://evil.example"):
            pass
    assert err.value.response.status_code == 403


async def test_connections_past_the_limit_are_shed_with_1013(make_server):
    _, api = await make_server(max_connections=2)
    token = (await api.token())["access_token"]
    async with api.connect("a", token) as one, api.connect("b", token) as two:
        await recv_json(one), await recv_json(two)
        async with api.connect("c", token) as three:
            assert await closed_code(three) == 1013
    async with api.connect("d", token) as four:  # the slots were released
        assert (await recv_json(four))["type"] == "welcome"
    assert (await api.stats())["closes_by_code"]["1013"] == 1


async def first_outcome(ws) -> str | int:
    """'welcome', another frame type, or the close code when the server closed first."""
    try:
        return (await recv_json(ws))["type"]
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else 1006


async def test_handshake_rate_sheds_a_burst(make_server):
    # 0.1/s: no token refills within the test, so exactly the bucket's 3 get in
    _, api = await make_server(handshake_rate=0.1, handshake_burst=3)
    token = (await api.token())["access_token"]
    outcomes = []
    for i in range(5):
        async with api.connect(f"c{i}", token) as ws:
            outcomes.append(await first_outcome(ws))
    assert outcomes == ["welcome"] * 3 + [1013] * 2
    assert (await api.stats())["admission_rejected"] == 2


async def test_legacy_no_shedding_accepts_past_the_limit(make_server):
    _, api = await make_server(max_connections=1, legacy_traits=frozenset({"no_shedding"}))
    token = (await api.token())["access_token"]
    async with api.connect("a", token) as one, api.connect("b", token) as two:
        assert (await recv_json(one))["type"] == (await recv_json(two))["type"] == "welcome"


async def test_invalid_frames_get_errors_then_1008_while_another_connection_works(make_server):
    _, api = await make_server(max_invalid_frames=3)
    token = (await api.token())["access_token"]
    async with api.connect("bad", token) as bad, api.connect("good", token) as good:
        await recv_json(bad), await recv_json(good)
        for raw in ("{oops", json.dumps({"v": "1.0", "type": "user_message", "id": "x"})):
            await bad.send(raw)
            error = valid(await recv_json(bad))
            assert error["code"] in ("invalid_json", "invalid_frame")
        await good.send(user_message(1))
        assert (await recv_until(good, "assistant_message"))["text"] == "hello"
        await bad.send(b"\x00binary")
        assert (await recv_json(bad))["type"] == "error"
        assert await closed_code(bad) == 1008
        await good.send(json.dumps({"v": "1.0", "type": "ping"}))
        assert (await recv_json(good))["type"] == "pong"


async def test_oversized_frame_closes_1009_only_that_connection(make_server):
    _, api = await make_server(max_frame_bytes=1024)
    token = (await api.token())["access_token"]
    async with api.connect("big", token) as big, api.connect("big", token) as peer:
        await recv_json(big), await recv_json(peer)
        await big.send(user_message(1, "x" * 5000))
        assert await closed_code(big) == 1009
        await peer.send(user_message(2, "still here"))
        assert (await recv_until(peer, "assistant_message"))["text"] == "still here"


async def test_every_reply_fans_out_to_every_socket_of_the_conversation(make_server):
    _, api = await make_server()
    token = (await api.token())["access_token"]
    async with api.connect("shared", token) as a, api.connect("shared", token) as b, \
            api.connect("other", token) as other:
        for ws in (a, b, other):
            await recv_json(ws)
        await a.send(user_message(1, "to both"))
        got_a, got_b = await recv_until(a, "assistant_message"), await recv_until(b, "assistant_message")
        assert got_a == got_b and got_a["seq"] == 1
        await other.send(json.dumps({"v": "1.0", "type": "ping"}))
        assert (await recv_json(other))["type"] == "pong"  # nothing from "shared" arrived before it
    _, log = await api.get("/admin/messages", admin=True)
    assert len(log["messages"]) == 1  # logged once, sent twice
    assert (await api.stats())["messages_sent"] == 2


async def test_resume_replays_exactly_the_missed_messages_in_order(make_server):
    _, api = await make_server()
    token = (await api.token())["access_token"]
    async with api.connect("conv", token) as ws:
        await recv_json(ws)
        for i in range(5):
            await ws.send(user_message(i, f"msg {i}"))
            await recv_until(ws, "assistant_message")
    async with api.connect("conv", token) as ws:
        welcome = await recv_json(ws)
        assert welcome["last_seq"] == 5
        await ws.send(json.dumps({"v": "1.0", "type": "resume", "id": "r1", "last_seq": 2}))
        replayed = [await recv_json(ws) for _ in range(3)]
        assert [(f["seq"], f["text"]) for f in replayed] == [(3, "msg 2"), (4, "msg 3"), (5, "msg 4")]
        await ws.send(json.dumps({"v": "1.0", "type": "ping"}))
        assert (await recv_json(ws))["type"] == "pong"  # and nothing else was replayed


async def test_live_expiry_closes_4401_unless_refreshed_in_band(make_server):
    _, api = await make_server(token_ttl=1.5, live_expiry=True, expiry_grace=0.2)
    first = await api.token("alice")
    async with api.connect("lazy", first["access_token"]) as lazy, \
            api.connect("diligent", first["access_token"]) as diligent:
        await recv_json(lazy), await recv_json(diligent)
        await asyncio.sleep(1.0)  # refresh late, so the fresh token outlives the lazy socket by ~1 s
        _, fresh = await api.post("/auth/refresh", {"refresh_token": first["refresh_token"]})
        await diligent.send(json.dumps({"v": "1.0", "type": "auth_refresh", "id": "a1", "token": fresh["access_token"]}))
        error = await recv_json(lazy, timeout=3)
        assert (error["type"], error["code"]) == ("error", "auth_expired")
        assert await closed_code(lazy) == 4401
        await diligent.send(json.dumps({"v": "1.0", "type": "ping"}))
        assert (await recv_json(diligent))["type"] == "pong"


async def test_auth_refresh_with_a_bad_token_is_an_error_frame(make_server):
    _, api = await make_server()
    alice, bob = await api.token("alice"), await api.token("bob")
    async with api.connect("c", alice["access_token"]) as ws:
        await recv_json(ws)
        await ws.send(json.dumps({"v": "1.0", "type": "auth_refresh", "id": "a1", "token": bob["access_token"]}))
        error = await recv_json(ws)
        assert (error["code"], error["ref"]) == ("auth_invalid", "a1")


async def test_admin_forced_expiry_hits_live_connections_when_live_expiry_is_on(make_server):
    _, api = await make_server(live_expiry=True, expiry_grace=0.2)
    alice, bob = await api.token("alice"), await api.token("bob")
    async with api.connect("a", alice["access_token"]) as a, api.connect("b", bob["access_token"]) as b:
        await recv_json(a), await recv_json(b)
        status, body = await api.post("/admin/expire-tokens", {"user": "alice"}, admin=True)
        assert (status, body["live_sessions"]) == (200, 1)
        assert (await recv_json(a))["code"] == "auth_expired"
        assert await closed_code(a) == 4401
        await b.send(json.dumps({"v": "1.0", "type": "ping"}))
        assert (await recv_json(b))["type"] == "pong"
    async with api.connect("a", alice["access_token"]) as again:  # the old token is dead for new handshakes too
        assert (await recv_json(again))["code"] == "auth_expired"


async def test_legacy_abrupt_errors_drops_an_expired_socket_without_a_frame(make_server):
    """The seed server closed abruptly on errors: an expired live socket ends with no error frame
    and no close frame, so the client sees 1006 and can not tell it from a network fault."""
    _, api = await make_server(live_expiry=True, expiry_grace=0.2, legacy_traits=frozenset({"abrupt_errors"}))
    alice = await api.token("alice")
    async with api.connect("a", alice["access_token"]) as a:
        await recv_json(a)
        await api.post("/admin/expire-tokens", {"user": "alice"}, admin=True)
        with pytest.raises(ConnectionClosed) as closed:
            await recv_json(a, timeout=3)
        assert closed.value.rcvd is None  # no close frame: 1006
        assert await closed_code(a) == 1006


async def test_forced_expiry_without_live_expiry_spares_open_connections(make_server):
    _, api = await make_server(live_expiry=False)
    tok = (await api.token())["access_token"]
    async with api.connect("a", tok) as ws:
        await recv_json(ws)
        await api.post("/admin/expire-tokens", {}, admin=True)
        await ws.send(user_message(1))
        assert (await recv_until(ws, "assistant_message"))["seq"] == 1


@pytest.mark.parametrize("code", [None, 4401, 1012])
async def test_admin_drop(make_server, code):
    _, api = await make_server()
    tok = (await api.token())["access_token"]
    sockets = [await api.connect(f"c{i}", tok).__aenter__() for i in range(4)]
    try:
        for ws in sockets:
            await recv_json(ws)
        body = {"fraction": 0.5, "seed": 7} | ({"code": code} if code else {})
        status, result = await api.post("/admin/drop", body, admin=True)
        assert (status, result["dropped"]) == (200, 2)
        codes = await asyncio.gather(*(_code_or_open(ws) for ws in sockets))
        assert sorted(c for c in codes if c != "open") == [code or 1006] * 2
        assert codes.count("open") == 2
    finally:
        for ws in sockets:
            await ws.close()


async def _code_or_open(ws) -> int | str:
    """The close code if the server closes this socket within a short bound, else 'open'."""
    try:
        await asyncio.wait_for(ws.wait_closed(), 1.0)
    except TimeoutError:
        return "open"
    return ws.close_code


async def test_unexpected_handler_error_closes_1011_for_that_connection_only(make_server):
    _, api = await make_server(agent=Malformed())
    tok = (await api.token())["access_token"]
    async with api.connect("c", tok) as broken, api.connect("c2", tok) as fine:
        await recv_json(broken), await recv_json(fine)
        await broken.send(user_message(1))
        assert await closed_code(broken) == 1011
        await fine.send(json.dumps({"v": "1.0", "type": "ping"}))
        assert (await recv_json(fine))["type"] == "pong"


async def test_agent_failure_is_an_error_frame_and_counted(make_server):
    _, api = await make_server(agent=Failing())
    tok = (await api.token())["access_token"]
    async with api.connect("c", tok) as ws:
        await recv_json(ws)
        await ws.send(user_message(1))
        error = await recv_until(ws, "error")
        assert (error["code"], error["ref"]) == ("agent_error", "m1")
        await ws.send(json.dumps({"v": "1.0", "type": "ping"}))
        assert (await recv_json(ws))["type"] == "pong"
    text = await api.metrics_text()
    assert 'agent_errors_total{agent="failing"} 1.0' in text
    assert 'agent_requests_total{agent="failing",outcome="error",tenure="none"} 1.0' in text


async def test_agent_runs_off_the_event_loop(make_server):
    gate = Gate()
    _, api = await make_server(agent=gate)
    tok = (await api.token())["access_token"]
    try:
        async with api.connect("slow", tok) as slow, api.connect("other", tok) as other:
            await recv_json(slow), await recv_json(other)
            await slow.send(user_message(1))
            assert (await recv_until(slow, "chat_status"))["status"] == "typing"
            assert await asyncio.to_thread(gate.entered.wait, 5)
            await other.send(json.dumps({"v": "1.0", "type": "ping"}))
            assert (await recv_json(other))["type"] == "pong"  # served while the agent blocks
            gate.release.set()
            assert (await recv_until(slow, "assistant_message"))["agent"] == "gate"
    finally:
        gate.release.set()


async def test_a_client_that_never_answers_pings_is_closed_with_1001_not_1011(make_server):
    """A client that reads every frame and writes nothing back (no pong, no close reply) is gone
    within interval + timeout + close_timeout, with 1001: its fault, never an internal error."""
    interval, timeout, close_timeout = 0.2, 0.3, 0.5
    server, api = await make_server(heartbeat_interval=interval, heartbeat_timeout=timeout, close_timeout=close_timeout)
    tok = (await api.token())["access_token"]
    started = time.monotonic()
    client = await asyncio.to_thread(DeafClient, api.ws_url, f"/ws/chat/c?token={tok}")
    try:
        close, pings = await asyncio.to_thread(client.read_until_closed, 10)
    finally:
        client.close()
    took = time.monotonic() - started
    assert pings == 1 and close is not None, (pings, close)
    assert (close.code, close.reason) == (1001, "keepalive ping timeout")
    assert took < interval + timeout + close_timeout + 2.0, took  # + slack for a busy machine
    stats = await eventually(lambda: _closes(api, "1001"))
    assert stats == 1 and "1011" not in (await api.stats())["closes_by_code"]


async def _closes(api, code: str) -> int:
    return (await api.stats())["closes_by_code"].get(code, 0)


async def test_metrics_move(make_server):
    _, api = await make_server(agent=TwoReplies())
    before = await api.metrics_text()
    assert "ws_connections_opened_total 0.0" in before
    tok = (await api.token())["access_token"]
    async with api.connect("c", tok) as ws:
        await recv_json(ws)
        assert "ws_connections_active 1.0" in await api.metrics_text()
        await ws.send(user_message(1))
        await recv_until(ws, "assistant_message"), await recv_until(ws, "assistant_message")
    await eventually(lambda: _closes(api, "1000"))
    text = await api.metrics_text()
    for line in ("ws_connections_active 0.0", "ws_connections_opened_total 1.0", 'ws_closes_total{code="1000"} 1.0',
                 "ws_connection_duration_seconds_count 1.0", "auth_tokens_issued_total 1.0",
                 'ws_messages_total{direction="in",type="user_message"} 1.0',
                 'ws_messages_total{direction="out",type="assistant_message"} 2.0',
                 'agent_requests_total{agent="real_estate",outcome="ok",tenure="long_term"} 1.0',
                 'agent_results_returned_sum{agent="real_estate"} 3.0',
                 'agent_execution_seconds_count{agent="real_estate"} 1.0'):
        assert line in text, line


async def test_legacy_no_duration_tracking(make_server):
    _, api = await make_server(legacy_traits=frozenset({"no_duration_tracking"}))
    tok = (await api.token())["access_token"]
    async with api.connect("c", tok) as ws:
        await recv_json(ws)
    await eventually(lambda: _closes(api, "1000"))
    assert "ws_connection_duration_seconds_count 0.0" in await api.metrics_text()


async def test_hostile_frames_get_error_frames_not_crashes(make_server):
    _, api = await make_server(max_invalid_frames=100)
    tok = (await api.token())["access_token"]
    hostile = ["[" * 30000 + "]" * 30000, "NaN", '{"v": "1.0", "type": "resume", "id": "r", "last_seq": 1e400}',
               '{"v": "1.0", "type": "user_message", "id": "\\ud800", "text": null}', "\u0000", "{}" * 1000,
               json.dumps({"v": "1.0", "type": "resume", "id": "r", "last_seq": 10 ** 30})]
    async with api.connect("c", tok) as ws:
        await recv_json(ws)
        for raw in hostile:
            await ws.send(raw)
            frame = await recv_json(ws)
            assert frame["type"] == "error" and frame["code"] in ("invalid_json", "invalid_frame"), (raw[:40], frame)
        await ws.send(user_message(1))
        assert (await recv_until(ws, "assistant_message"))["seq"] == 1


async def test_metrics_export_the_process_and_known_labels_at_zero(make_server):
    """Before any traffic: the process collector's series (the memory gate reads them through
    Prometheus) and every counter whose labels are known in advance, at 0."""
    from prometheus_client.parser import text_string_to_metric_families

    server, api = await make_server()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(await api.metrics_text()) for s in family.samples}
    assert samples[("process_resident_memory_bytes", ())] > 10e6
    assert samples[("process_open_fds", ())] >= 3
    assert ("process_cpu_seconds_total", ()) in samples
    agent = server.state.agent_name
    for name, label, value in (("agent_errors_total", "agent", agent), ("ws_closes_total", "code", "4401"),
                               ("ws_closes_total", "code", "1006"), ("ws_handshake_rejections_total", "status", "403"),
                               ("auth_refresh_total", "result", "reused")):
        assert samples[(name, ((label, value),))] == 0.0, (name, label, value)
