"""Each fix's effect, shown with real clients against a real `stormbench serve` process."""
from __future__ import annotations

import asyncio
import json
from collections import Counter
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from harness.proxy.process import start_proxy
from system.client.driver import Endpoints
from system.client.policy import ClientConfig, Fixes

pytestmark = pytest.mark.timeout(90)

# wall-clock constants small enough for a test, in the same proportions as a real client
QUICK = dict(base_delay=0.05, max_delay=0.4, legacy_delay=0.1, max_retries=3, think_time=0.3,
             restart_window=0.3, overload_base=0.2, stable_after=0.5)


def config(profile: str, **overrides) -> ClientConfig:
    return ClientConfig(fixes=Fixes.profile(profile), **{**QUICK, **overrides})


def all_open(bench, clients, times: int = 1):
    return lambda: all(len(bench.of("open", c)) >= times for c in clients)


@pytest.mark.parametrize("profile", ["legacy", "fixed"])
async def test_token_expiry_legacy_403_loop_and_manual_refresh_fixed_neither(serve, bench_on, profile):
    """Against the legacy server (HTTP 403 for a bad token at the handshake), revoke every
    access token and cut every socket: the legacy client retries with its cached token."""
    server = serve("--legacy", "--token-ttl", "10m")
    bench = bench_on(server)
    clients = ["c0", "c1"]
    # every connection that opened counts as stable, so the retry count starts clean after the drop:
    # with any positive stable_after a busy machine can drop a socket younger than it (seen: 9 ms
    # for 10 ms), the drop then counts as the first failure and the client gives up after 2 403s
    bench.start(config(profile, stable_after=0.0), len(clients))
    await bench.until(all_open(bench, clients), what="both clients connected")

    await server.admin("/admin/expire-tokens", {})
    dropped = await server.admin("/admin/drop", {"fraction": 1.0})
    assert dropped["dropped"] == 2
    # legacy: 403 loop, give-up, and the hard refresh reconnects; fixed: refresh, then reconnect
    await bench.until(all_open(bench, clients, times=2), timeout=15, what="every client back online")
    await bench.stop()

    forbidden = bench.of("handshake_failed", status=403)
    give_ups = bench.of("give_up")
    if profile == "legacy":
        for c in clients:
            assert len(bench.of("handshake_failed", c, status=403)) == QUICK["max_retries"]
            assert [g["reason"] for g in bench.of("give_up", c)] == ["max_retries"]
            # the 403s all used the cached token; after the manual refresh a new session logs in anew
            kinds = [(r["kind"], r.get("n"), r.get("refresh")) for r in bench.records
                     if r["client"] == c and r["kind"] in ("attempt", "give_up", "token")]
            assert kinds == [("token", None, False), ("attempt", 0, None), ("attempt", 1, None),
                             ("attempt", 2, None), ("attempt", 3, None), ("give_up", None, None),
                             ("token", None, False), ("attempt", 0, None)]
    else:
        assert forbidden == [] and give_ups == []
        assert len(bench.of("token", refresh=True, ok=True)) >= len(clients)


MESSAGES = 16


@pytest.mark.parametrize("profile", ["legacy", "fixed"])
async def test_socket_churn_legacy_shows_duplicates_fixed_none(serve, bench_on, profile):
    """Short-lived tokens: the legacy client opens a socket per token and keeps the old one, so the
    server fans every reply out to both; the fixed one refreshes in-band on one socket, which the
    live-expiry server would close with 4401 if the refresh did not reach it."""
    server = serve("--token-ttl", "1.2s", "--live-expiry", "--expiry-grace", "0.3s")
    bench = bench_on(server)
    [driver] = bench.start(config(profile, refresh_lead=0.6, token_ttl=1.2))
    await bench.until(all_open(bench, ["c0"]), what="connected")
    for i in range(MESSAGES):  # paced chatter over ~3 token lifetimes
        driver.send_user_message(f"message {i}")
        await asyncio.sleep(0.25)
    await bench.until(lambda: len(bench.of("sent")) == len(set(r["msg_id"] for r in bench.of("sent"))) == MESSAGES,
                      what="every user message sent")
    replies = await server.admin("/admin/messages")
    await bench.until(lambda: {r["msg_id"] for r in bench.of("displayed")} >= {m["id"] for m in replies["messages"]},
                      what="every reply displayed")
    await bench.stop()

    displayed = Counter(r["msg_id"] for r in bench.of("displayed"))
    duplicates = sum(n - 1 for n in displayed.values())
    if profile == "legacy":
        assert duplicates > 0
        assert len(bench.of("attempt")) >= 3  # a new socket per token
    else:
        assert duplicates == 0
        assert len(bench.of("attempt")) == 1 and len(bench.of("token", refresh=True, ok=True)) >= 3
        assert [c["code"] for c in bench.of("close")] == [1000]  # only our own close at the end
        assert driver.policy.listener_count <= 1


async def talk(server, texts: list[str], conversation: str = "room", user: str = "bob0") -> None:
    """The conversation's owner on a second device (its own socket) says each text and waits for
    the reply: a conversation belongs to one user, so the other talker is that user elsewhere."""
    token = await server.token(user)
    async with connect(server.endpoints.chat(conversation, token)) as ws:
        for text in texts:
            await ws.send(json.dumps({"v": "1.0", "type": "user_message", "id": f"a-{text}", "text": text}))
            while True:  # the agent answers each message once
                frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if frame["type"] == "assistant_message":
                    break


async def add_proxy(server, proxy, toxics: list[dict] = ()) -> tuple[Endpoints, list[str]]:
    """A proxy in front of the server's WebSocket (auth stays direct); returns the endpoints and toxic names."""
    ws = urlsplit(server.endpoints.ws_url)
    async with server.http.post(f"{proxy.api_url}/proxies", json={
            "name": "ws", "listen": "127.0.0.1:0", "upstream": f"{ws.hostname}:{ws.port}"}) as resp:
        assert resp.status == 201, await resp.text()
        listen = (await resp.json())["listen"]
    names = []
    for toxic in toxics:
        async with server.http.post(f"{proxy.api_url}/proxies/ws/toxics", json=toxic) as resp:
            assert resp.status == 200, await resp.text()
            names.append((await resp.json())["name"])
    return Endpoints(f"ws://{listen}", server.endpoints.http_url), names


@pytest.mark.parametrize("resume", [True, False])
async def test_forced_drop_resume_loses_nothing(serve, bench_on, resume):
    """The server aborts every connection; while the client under test is away bob's other device
    gets replies in his conversation. With resume they are replayed on reconnect; without, lost."""
    server = serve("--token-ttl", "10m")
    bench = bench_on(server)
    fixes = Fixes.profile("fixed").with_changes(disable=["jitter"] + ([] if resume else ["dedup_resume"]))
    # no jitter: the client stays away a known 1.5 s, long enough for the other member to talk
    bob_config = ClientConfig(fixes=fixes, **{**QUICK, "base_delay": 1.5, "max_delay": 1.5})
    [bob] = bench.start(bob_config, conversation="room", prefix="bob")
    await bench.until(all_open(bench, ["bob0"]), what="bob connected")

    await talk(server, ["before-1", "before-2"])
    await bench.until(lambda: len(bench.of("displayed")) == 2, what="bob saw the first replies")
    await server.admin("/admin/drop", {"fraction": 1.0})
    await bench.until(lambda: bench.of("close", "bob0", by="network"), what="bob's socket dropped")
    await talk(server, ["during-1", "during-2", "during-3"])
    assert len(bench.of("open", "bob0")) == 1, "bob came back before the others talked; the test proves nothing"
    await bench.until(all_open(bench, ["bob0"], times=2), what="bob reconnected")
    log = (await server.admin("/admin/messages"))["messages"]
    sent = {m["id"] for m in log if m["conversation_id"] == "room"}
    assert len(sent) == 5
    if resume:
        await bench.until(lambda: {r["msg_id"] for r in bench.of("displayed")} == sent, what="bob saw everything")
    else:
        await asyncio.sleep(0.5)  # a window for anything still in flight: there is nothing to wait for
    await bench.stop()
    displayed = [r["msg_id"] for r in bench.of("displayed")]
    lost = sent - set(displayed)
    if resume:
        assert lost == set() and len(displayed) == len(set(displayed)) == 5
        replayed = bench.of("received", "bob0", sock=2)
        assert len(replayed) == 3 and [r["seq"] for r in replayed] == sorted(r["seq"] for r in replayed)
    else:
        assert len(lost) == 3


async def test_token_refreshed_during_a_slow_handshake_reaches_the_server(serve, bench_on):
    """The staging-day 4401s after a restart: a client refreshed its token while its socket was
    still in the handshake (opened with the old token); the live-expiry server closed it with 4401
    when the old token expired. A proxy delays what the server sends by 3 s until the socket is
    open, so the first proactive refresh (at 2.25 s) lands mid-handshake; without the in-band
    refresh on open the server closes at 3 + 1 s grace, before the next proactive refresh (4.5 s)."""
    server = serve("--token-ttl", "3s", "--live-expiry", "--expiry-grace", "1s")
    bench = bench_on(server)
    with start_proxy() as proxy:
        slow, [toxic] = await add_proxy(server, proxy, [
            {"type": "latency", "stream": "downstream", "attributes": {"latency": 3000}}])
        bench.start(config("fixed", token_ttl=3.0, refresh_lead=0.75), endpoints=slow)
        await bench.until(lambda: bench.of("open"), timeout=10, what="the slow handshake")
        async with server.http.delete(f"{proxy.api_url}/proxies/ws/toxics/{toxic}") as resp:
            assert resp.status == 204, await resp.text()  # from now on a close reaches both ends at once
        refreshed = lambda: bench.of("token", refresh=True, ok=True)  # noqa: E731
        await bench.until(lambda: len(refreshed()) >= 2, timeout=10, what="two proactive refreshes")
        # the second refresh comes after the old token's expiry + grace: the server has judged by now
        async with server.http.get(server.proc.ready["http_url"] + "/metrics") as resp:
            metrics = await resp.text()
        await bench.stop()
    opened = bench.of("open")[0]
    assert refreshed()[0]["t"] < opened["t"], "the refresh did not land mid-handshake; the test proves nothing"
    closes = {s.labels["code"]: s.value for f in text_string_to_metric_families(metrics)
              for s in f.samples if s.name == "ws_closes_total"}
    assert closes.get("4401", 0) == 0
    assert [c["code"] for c in bench.of("close")] == [1000] and len(bench.of("attempt")) == 1


async def test_live_message_overtaking_the_replay_is_shown_in_order(serve, bench_on):
    """Bob's reconnect reaches the server, which fans his other device's next reply out to him at once; his
    `resume` is slowed by a proxy (1 s client to server), so the replay of what he missed comes
    after that live message. The fixed client still shows the conversation in seq order."""
    server = serve("--token-ttl", "10m")
    bench = bench_on(server)
    fixes = Fixes.profile("fixed").with_changes(disable=["jitter"])  # away a known 1 s
    with start_proxy() as proxy:
        endpoints, _ = await add_proxy(server, proxy)
        bench.start(ClientConfig(fixes=fixes, **{**QUICK, "base_delay": 1.0, "max_delay": 1.0}),
                    conversation="room", prefix="bob", endpoints=endpoints)
        await bench.until(all_open(bench, ["bob0"]), what="bob connected")
        await talk(server, ["before-1"])
        await bench.until(lambda: len(bench.of("displayed")) == 1, what="bob saw the first reply")
        await server.admin("/admin/drop", {"fraction": 1.0})
        await bench.until(lambda: bench.of("close", "bob0", by="network"), what="bob's socket dropped")
        await talk(server, ["missed-1", "missed-2", "missed-3"])
        async with server.http.post(f"{proxy.api_url}/proxies/ws/toxics", json={
                "type": "latency", "stream": "upstream", "attributes": {"latency": 1000}}) as resp:
            assert resp.status == 200, await resp.text()
        assert len(bench.of("open", "bob0")) == 1, "bob came back before the others talked; the test proves nothing"
        await bench.until(all_open(bench, ["bob0"], times=2), what="bob reconnected")
        await talk(server, ["live-1"])  # bob's resume is still on its way to the server
        await bench.until(lambda: len({r["msg_id"] for r in bench.of("displayed")}) == 5, what="bob saw all five")
        await bench.stop()
    received = [r["seq"] for r in bench.of("received", sock=2)]
    assert received[0] == 5 and sorted(set(received)) == [2, 3, 4, 5], f"no overtaking happened: {received}"
    assert [r["seq"] for r in bench.of("displayed")] == [1, 2, 3, 4, 5]
