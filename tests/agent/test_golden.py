"""Golden sessions replayed in process and over a real WebSocket to a real `stormbench serve` subprocess."""
from __future__ import annotations

import json
import os

import aiohttp
import pytest
import websockets

from harness.emulate.procs import ManagedProcess, stormbench_argv
from system.agent.supervisor import TODAY_ENV
from system.client.credentials import provision

from .golden import GOLDEN_TODAY, load_sessions, replay

SESSIONS = load_sessions()
IDS = [s["name"] for s in SESSIONS]


def test_the_golden_sessions_cover_both_tenures_the_question_and_a_refinement():
    texts = {s["name"]: [b for t in s["turns"] for b in t["replies"]] for s in SESSIONS}
    for name, tenure in (("short_term", "short"), ("long_term", "long")):
        bodies = texts[name]
        assert any(a.get("question") == "tenure" for b in bodies for a in b.get("actions", []))
        assert any(b["text"].startswith("Updated:") for b in bodies)  # a refinement on shown results
        shown = [x for b in bodies for a in b.get("actions", []) for x in a.get("listings", [])]
        assert shown and all(x["tenure"] == tenure for x in shown)


@pytest.mark.parametrize("session", SESSIONS, ids=IDS)
def test_golden_session_replays_in_process(supervisor, session):
    assert replay(supervisor, session) == [turn["replies"] for turn in session["turns"]]


@pytest.fixture(scope="module")
def server(tmp_path_factory, listings_db):
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, TODAY_ENV: GOLDEN_TODAY.isoformat()}
    proc = ManagedProcess(stormbench_argv("serve", "--host", "127.0.0.1", "--port", "0", "--http-port", "0",
                                          "--admin-key", "golden", "--agent", "supervisor",
                                          "--listings-db", str(listings_db)),
                          name="serve", env=env, log_path=log, ready_timeout=30)
    proc.start()
    try:
        yield proc.ready
    finally:
        proc.stop()


async def _recv(ws) -> dict:
    return json.loads(await ws.recv())


@pytest.mark.parametrize("session", SESSIONS, ids=IDS)
async def test_golden_session_replays_over_a_real_websocket(server, session):
    async with aiohttp.ClientSession() as http:
        user = f"golden-{session['name']}"
        secrets = await provision(http, server["http_url"], "golden", [user])
        async with http.post(f"{server['http_url']}/auth/token", json={"user": user, "secret": secrets[user]}) as r:
            assert r.status == 200
            token = (await r.json())["access_token"]
    url = f"{server['ws_url']}/ws/chat/golden-{session['name']}?token={token}"
    async with websockets.connect(url, open_timeout=10) as ws:
        assert (await _recv(ws))["type"] == "welcome"
        last_seq = 0
        for n, turn in enumerate(session["turns"]):
            await ws.send(json.dumps({"v": "1.0", "type": "user_message", "id": f"u{n}", "text": turn["user"]}))
            assert await _recv(ws) == {"v": "1.1", "type": "ack", "ref": f"u{n}"}  # stored, then answered
            first = await _recv(ws)
            assert (first["type"], first["status"]) == ("chat_status", "typing")
            got = []
            while len(got) < len(turn["replies"]):
                frame = await _recv(ws)
                assert frame["type"] == "assistant_message", frame
                assert frame["v"] == "1.0" and frame["seq"] > last_seq and "meta" not in frame
                last_seq = frame["seq"]
                got.append({k: v for k, v in frame.items() if k not in ("v", "type", "id", "seq")})
            assert got == turn["replies"], f"turn {n}: {turn['user']!r}"


async def test_the_servers_agent_metrics_count_the_supervisors_answers(server):
    """One long-let search over the wire, then /metrics shows it under agent="real_estate", tenure="long"."""
    async with aiohttp.ClientSession() as http:
        secrets = await provision(http, server["http_url"], "golden", ["metrics"])
        async with http.post(f"{server['http_url']}/auth/token", json={"user": "metrics", "secret": secrets["metrics"]}) as r:
            token = (await r.json())["access_token"]
        async with websockets.connect(f"{server['ws_url']}/ws/chat/metrics?token={token}", open_timeout=10) as ws:
            await _recv(ws)  # welcome
            await ws.send(json.dumps({"v": "1.0", "type": "user_message", "id": "m", "text": "long let in Porto"}))
            while (await _recv(ws))["type"] != "assistant_message":
                pass
        async with http.get(f"{server['http_url']}/metrics") as r:
            text = await r.text()
    samples = {}
    for line in text.splitlines():
        if line.startswith("agent_") and " " in line:
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    assert samples['agent_requests_total{agent="real_estate",outcome="ok",tenure="long"}'] >= 1
    assert samples['agent_results_returned_sum{agent="real_estate"}'] >= 5
    assert samples['agent_execution_seconds_count{agent="real_estate"}'] >= 1
