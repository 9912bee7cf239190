"""The driver's own duties against a real server: timers honoured, network loss emulated,
server close codes reported as a browser would see them."""
from __future__ import annotations

import asyncio

import pytest

from system.client.policy import ClientConfig, Fixes

pytestmark = pytest.mark.timeout(60)

QUICK = dict(base_delay=0.05, max_delay=0.2, legacy_delay=0.05, max_retries=100, think_time=0.3,
             restart_window=0.6, overload_base=0.2, stable_after=0.01)


@pytest.mark.parametrize("profile", ["legacy", "fixed"])
async def test_offline_attempts_only_without_network_awareness(serve, bench_on, profile):
    server = serve()
    bench = bench_on(server)
    [driver] = bench.start(ClientConfig(fixes=Fixes.profile(profile), **QUICK))
    await bench.until(lambda: bench.of("open"), what="connected")
    driver.set_online(False)
    await bench.until(lambda: bench.of("close", by="network", code=1006), what="the network took the socket")
    # an absence is what is tested: give the legacy client time for several retries at 50 ms
    await asyncio.sleep(0.6)
    offline_attempts = len(bench.of("attempt")) - 1
    failed = bench.of("handshake_failed", status=None)
    driver.set_online(True)
    await bench.until(lambda: len(bench.of("open")) == 2, what="back online and reconnected")
    await bench.stop()
    if profile == "fixed":
        assert offline_attempts == 0 and failed == []
        online_at = bench.of("online")[0]["t"]
        assert bench.of("open")[1]["t"] - online_at < 1.0  # promptly, not after a long backoff
    else:
        assert offline_attempts >= 3 and len(failed) >= 3


async def test_drop_connections_is_a_network_drop(serve, bench_on):
    server = serve()
    bench = bench_on(server)
    [driver] = bench.start(ClientConfig(fixes=Fixes.profile("fixed"), **QUICK))
    await bench.until(lambda: bench.of("open"), what="connected")
    assert driver.drop_connections() == 1
    await bench.until(lambda: len(bench.of("open")) == 2, what="reconnected")
    await bench.stop()
    [first_close, last_close] = bench.of("close")
    assert (first_close["code"], first_close["by"]) == (1006, "network")
    assert (last_close["code"], last_close["by"]) == (1000, "client")


@pytest.mark.parametrize("profile", ["legacy", "fixed"])
async def test_service_restart_1012_spread_only_with_hygiene_and_jitter(serve, bench_on, profile):
    server = serve()
    bench = bench_on(server)
    n = 6
    bench.start(ClientConfig(fixes=Fixes.profile(profile), **QUICK), n)
    clients = [f"c{i}" for i in range(n)]
    await bench.until(lambda: all(bench.of("open", c) for c in clients), what="all connected")
    assert (await server.admin("/admin/drop", {"fraction": 1.0, "code": 1012}))["dropped"] == n
    await bench.until(lambda: all(len(bench.of("open", c)) == 2 for c in clients), what="all reconnected")
    await bench.stop()
    delays = []
    for c in clients:
        close = bench.of("close", c, code=1012)[0]
        assert close["by"] == "server"
        [backoff] = bench.of("backoff", c)
        attempt = bench.of("attempt", c)[1]
        assert attempt["t"] >= close["t"] + backoff["delay"] - 0.005  # the driver honours the timer
        delays.append(backoff["delay"])
    if profile == "fixed":
        assert all(0 <= d <= QUICK["restart_window"] for d in delays) and len(set(delays)) == n
    else:
        assert delays == [QUICK["legacy_delay"]] * n  # lock-step: the herd returns at once
