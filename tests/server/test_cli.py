"""`stormbench serve` as a real subprocess: the ready line, SIGTERM, restarts on the same database."""
from __future__ import annotations

import json
import signal
import subprocess

import aiohttp

from tests.server.conftest import REPO, STORMBENCH, Api, closed_code, recv_json, recv_until


def api_for(proc, session, key: str) -> Api:
    return Api(proc.http_url, proc.ws_url, session, admin_key=key)


async def test_ready_line_then_sigterm_closes_everyone_with_1012(spawn_serve, http_session):
    serve = spawn_serve("--admin-key", "k1")
    assert serve.ready["event"] == "ready"
    assert serve.ws_url.startswith("ws://127.0.0.1:") and serve.http_url.startswith("http://127.0.0.1:")
    assert "admin_key" not in serve.ready  # given, so not echoed
    api = api_for(serve, http_session, "k1")
    tok = (await api.token())["access_token"]
    async with api.connect("a", tok) as a, api.connect("b", tok) as b:
        await recv_json(a), await recv_json(b)
        serve.proc.send_signal(signal.SIGTERM)
        assert [await closed_code(a), await closed_code(b)] == [1012, 1012]
    assert serve.proc.wait(15) == 0
    assert serve.proc.stdout.read() == ""  # exactly one line on stdout
    events = [json.loads(line)["event"] for line in serve.log_path.read_text().splitlines()]
    assert "shutdown" in events and events.count("close") == 2


async def test_legacy_shutdown_is_abrupt(spawn_serve, http_session):
    serve = spawn_serve("--legacy", "--admin-key", "k")
    assert serve.ready["legacy_traits"] == ["abrupt_errors", "abrupt_shutdown", "handshake_403", "no_acks",
                                           "no_duration_tracking", "no_shedding"]
    api = api_for(serve, http_session, "k")
    async with api.connect("a", (await api.token())["access_token"]) as ws:
        await recv_json(ws)
        serve.proc.send_signal(signal.SIGTERM)
        assert await closed_code(ws) == 1006
    assert serve.proc.wait(15) == 0


async def test_restart_on_the_same_db_keeps_tokens_families_and_seq(spawn_serve, tmp_path):
    db = tmp_path / "chat.db"
    first = spawn_serve("--db", str(db), "--admin-key", "k")
    async with aiohttp.ClientSession() as session:
        api = api_for(first, session, "k")
        pair = await api.token("alice")
        async with api.connect("conv", pair["access_token"]) as ws:
            await recv_json(ws)
            await ws.send(json.dumps({"v": "1.0", "type": "user_message", "id": "m1", "text": "before"}))
            assert (await recv_until(ws, "assistant_message"))["seq"] == 1
            first.proc.send_signal(signal.SIGTERM)
            assert await closed_code(ws) == 1012
        assert first.proc.wait(15) == 0

        second = spawn_serve("--db", str(db), "--admin-key", "k")
        api = api_for(second, session, "k")
        async with api.connect("conv", pair["access_token"]) as ws:  # the secret was kept in the db
            welcome = await recv_json(ws)
            assert (welcome["type"], welcome["last_seq"]) == ("welcome", 1)
            await ws.send(json.dumps({"v": "1.0", "type": "user_message", "id": "m2", "text": "after"}))
            assert (await recv_until(ws, "assistant_message"))["seq"] == 2
        status, _ = await api.post("/auth/refresh", {"refresh_token": pair["refresh_token"]})
        assert status == 200
        second.proc.send_signal(signal.SIGTERM)
        assert second.proc.wait(15) == 0


def test_generated_admin_key_is_printed(spawn_serve):
    serve = spawn_serve(env={"STORMBENCH_ADMIN_KEY": ""})
    assert len(serve.ready["admin_key"]) >= 16
    serve.proc.send_signal(signal.SIGTERM)
    assert serve.proc.wait(15) == 0


def test_bad_flags_exit_2_with_the_flag_named():
    for flags, mention in ((["--token-ttl", "soon"], "--token-ttl"), (["--legacy-trait", "typo"], "--legacy-trait"),
                           (["--handshake-rate", "fast"], "--handshake-rate"), (["--agent", "nope"], "--agent")):
        done = subprocess.run([*STORMBENCH, "serve", *flags], cwd=REPO,
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 2, (flags, done.stderr)
        assert mention in done.stderr
        assert done.stdout == ""


def test_rate_and_duration_flags_accept_what_the_harness_passes():
    from system.units import optional_duration_arg, rate_arg
    assert [rate_arg(t) for t in ("2000", "2000/s", "120/m", "0.5")] == [2000.0, 2000.0, 2.0, 0.5]
    assert [optional_duration_arg(t) for t in ("off", "0", "0.125", "30s")] == [None, None, 0.125, 30.0]
