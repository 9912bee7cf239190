"""Bad input never crashes or hangs the API; churn under load leaks nothing."""
from __future__ import annotations

import re
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.proxy.conftest import Api, connect, recv_exactly, wait_until

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=12,
)
toxic_like = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=10) | json_values,
        "type": st.sampled_from(["latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer",
                                 "limit_data", "noop", "ws_close", "ws_drop_pings", "ws_hold", "bogus"]) | json_values,
        "stream": st.sampled_from(["upstream", "downstream", "UpStream", ""]) | json_values,
        "toxicity": st.floats(-1, 2, allow_nan=False) | json_values,
        "attributes": st.dictionaries(
            st.sampled_from(["latency", "jitter", "rate", "delay", "timeout", "bytes", "average_size",
                             "size_variation", "code", "reason"]),
            st.integers(-(2**40), 2**40) | json_values,
            max_size=4,
        ) | json_values,
    },
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=toxic_like | json_values, update=toxic_like | json_values)
def test_random_toxic_bodies_get_answers_not_crashes(api: Api, echo, body, update) -> None:
    if "p" not in api.get("/proxies").json():
        api.create("p", echo.address)
    r = api.post("/proxies/p/toxics", body)
    assert r.status_code in (200, 400, 409), r.text
    if r.status_code == 200:
        name = r.json()["name"]
        u = api.patch(f"/proxies/p/toxics/{name}", update)
        assert u.status_code in (200, 400, 404), u.text
        assert api.delete(f"/proxies/p/toxics/{name}").status_code in (204, 404)
    else:
        assert r.json()["status"] == r.status_code
    # the data plane still works with whatever is left in the chain removed
    assert api.post("/reset").status_code == 204
    with connect(api.get("/proxies/p").json()) as sock:
        sock.sendall(b"ok")
        assert recv_exactly(sock, 2) == b"ok"


@pytest.mark.slow
def test_churn_under_load_leaks_nothing(api: Api, echo, proxy_process) -> None:
    """200 echoing connections while toxics come and go for 10 s: every byte back, nothing left open."""
    import psutil

    proxy = api.create("p", echo.address)
    rss_before = psutil.Process(proxy_process.process.pid).memory_info().rss
    stop = threading.Event()
    failures: list[str] = []

    def client(i: int) -> None:
        try:
            with connect(proxy, timeout=10) as sock:
                n = 0
                while not stop.is_set():
                    msg = b"%d:%d;" % (i, n) * 50
                    sock.sendall(msg)
                    if recv_exactly(sock, len(msg)) != msg:
                        failures.append(f"client {i} message {n} corrupted")
                        return
                    n += 1
        except OSError as exc:
            failures.append(f"client {i}: {exc}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    toxics = [
        {"name": "lat", "type": "latency", "stream": "downstream", "attributes": {"latency": 5, "jitter": 4}},
        {"name": "slice", "type": "slicer", "stream": "upstream", "attributes": {"average_size": 16, "size_variation": 8}},
        {"name": "bw", "type": "bandwidth", "stream": "downstream", "attributes": {"rate": 5000}},
        {"name": "hold", "type": "ws_hold", "stream": "upstream"},
    ]
    while time.monotonic() < deadline:
        for toxic in toxics:
            api.post("/proxies/p/toxics", toxic)
        time.sleep(0.05)
        for toxic in toxics:
            api.delete(f"/proxies/p/toxics/{toxic['name']}")
    stop.set()
    for t in threads:
        t.join(20)
    assert failures == []
    wait_until(lambda: 'toxiproxy_proxy_connections{proxy="p"} 0.0' in api.get("/metrics").text, 5, "connections to close")
    rss_after = psutil.Process(proxy_process.process.pid).memory_info().rss
    assert rss_after - rss_before < 64 << 20
    text = api.get("/metrics").text
    up = re.search(r'toxiproxy_proxy_sent_bytes_total\{direction="upstream",[^}]*proxy="p"[^}]*\} (\S+)', text)
    assert up and float(up.group(1)) > 0
