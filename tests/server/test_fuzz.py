"""Fuzzing (hypothesis): whatever a client sends as frames or HTTP bodies, the server answers with
an error frame or a 4xx (never 1011, never a 5xx), stays up, and another client in another
conversation keeps receiving its messages."""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from tests.server.conftest import recv_json, recv_until

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)
frame_like = st.fixed_dictionaries(
    {"v": st.sampled_from(["1.0", "1.1", "2.0", 1]),
     "type": st.sampled_from(["user_message", "resume", "auth_refresh", "ping", "bogus"])},
    optional={"id": st.text(max_size=20) | st.integers(), "text": st.text(max_size=200) | json_values,
              "last_seq": st.integers(min_value=-2**70, max_value=2**70) | json_values,
              "token": st.text(max_size=60) | json_values})
raw_frames = st.one_of(
    frame_like.map(lambda f: json.dumps(f)),
    json_values.map(json.dumps),
    st.text(max_size=300),
    st.binary(max_size=300),
    st.integers(min_value=1, max_value=3000).map(lambda n: "[" * n + "]" * n),
    st.just('{"v":"1.0","type":"auth_refresh","id":"r","token":"\\ud800"}'),
)
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=300),
    st.integers(min_value=1, max_value=50_000).map(lambda n: b"[" * n + b"]" * n),
    st.fixed_dictionaries({}, optional={"user": json_values, "secret": json_values,
                                        "refresh_token": json_values, "users": json_values}
                          ).map(lambda d: json.dumps(d).encode()),
)


async def _bystander_still_served(bystander, n: int) -> None:
    await bystander.send(json.dumps({"v": "1.0", "type": "user_message", "id": f"b{n}", "text": "still there?"}))
    await recv_until(bystander, "assistant_message")


async def test_fuzzed_frames_get_error_frames_and_others_keep_receiving(make_server):
    _, api = await make_server(max_invalid_frames=10**6, resume_rate=1000.0, resume_burst=1000)
    token = (await api.token("fuzzer"))["access_token"]
    bystander_token = (await api.token("bystander"))["access_token"]
    async with api.connect("bystander-conv", bystander_token) as bystander:
        assert (await recv_json(bystander))["type"] == "welcome"
        closes: list[int] = []

        pending: list[list] = []

        @FUZZ
        @given(frames=st.lists(raw_frames, min_size=1, max_size=5))
        def draw(frames) -> None:
            pending.append(frames)

        draw()  # hypothesis draws the examples; they are sent below, on this test's event loop
        for n, frames in enumerate(pending):
            async with api.connect("fuzz-conv", token, max_size=None) as ws:
                assert (await recv_json(ws))["type"] == "welcome"
                for frame in frames:
                    try:
                        await ws.send(frame)
                    except ConnectionClosed:
                        break
                await ws.send(json.dumps({"v": "1.0", "type": "ping"}))
                try:
                    while (await recv_json(ws))["type"] != "pong":
                        pass
                except ConnectionClosed:
                    closes.append(ws.close_code)
            await _bystander_still_served(bystander, n)
        assert all(code in (1008, 1009) for code in closes), closes  # policy or too big, never 1011
    stats = await api.stats()
    assert "1011" not in stats["closes_by_code"], stats


async def test_fuzzed_http_bodies_get_4xx(make_server, http_session):
    _, api = await make_server(auth_address_rate=None, auth_user_rate=None)
    statuses: list[tuple[str, int]] = []
    drawn: list[tuple[str, bytes]] = []

    @FUZZ
    @given(path=st.sampled_from(["/auth/token", "/auth/refresh", "/admin/users", "/admin/drop",
                                 "/admin/expire-tokens", "/admin/auth-outage"]), body=bodies)
    def draw(path, body) -> None:
        drawn.append((path, body))

    draw()
    for path, body in drawn:
        async with http_session.post(api.http_url + path, data=body, headers={
                "Content-Type": "application/json", "X-Admin-Key": api.admin_key}) as r:
            statuses.append((path, r.status))
            if r.status != 200:  # an error says what, as JSON
                text = await r.text()
                assert "error" in json.loads(text), (path, body[:80], r.status, text)
    assert all(s < 500 for _, s in statuses), [x for x in statuses if x[1] >= 500]
    async with http_session.get(api.http_url + "/healthz") as r:
        assert r.status == 200
