"""The unmodified toxiproxy-python 0.1.1 client against `stormbench proxy` (§3 #72)."""
from __future__ import annotations

import time

import pytest
from toxiproxy import Toxiproxy
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from tests.proxy.conftest import Api, connect, free_port, listening, recv_exactly


@pytest.fixture
def toxiproxy(api: Api) -> Toxiproxy:
    return Toxiproxy()


def test_running_and_version(toxiproxy: Toxiproxy) -> None:
    assert toxiproxy.running()
    assert toxiproxy.version() == b'{"version": "2.12.0"}\n'


def test_create_disabled_echoes_listen(toxiproxy: Toxiproxy) -> None:
    listen = f"127.0.0.1:{free_port()}"
    proxy = toxiproxy.create(upstream="127.0.0.1:1", name="p", listen=listen, enabled=False)
    assert (proxy.listen, proxy.enabled) == (listen, False)
    assert not listening(listen)


def test_disable_enable_and_down(toxiproxy: Toxiproxy) -> None:
    proxy = toxiproxy.create(upstream="127.0.0.1:1", name="p")
    listen = toxiproxy.get_proxy("p").listen
    assert listening(listen)
    proxy.disable()
    assert not listening(listen) and toxiproxy.get_proxy("p").enabled is False
    proxy.enable()
    assert listening(listen)
    with proxy.down():
        assert not listening(listen)
    assert listening(listen)


def test_duplicate_create_raises(toxiproxy: Toxiproxy, api: Api) -> None:
    toxiproxy.create(upstream="127.0.0.1:1", name="p")
    with pytest.raises(ProxyExists):
        toxiproxy.create(upstream="127.0.0.1:1", name="p")
    # the server itself answers 409 too (the client checks its list first)
    assert api.post("/proxies", {"name": "p", "upstream": "127.0.0.1:1"}).status_code == 409


def test_toxics_on_disabled_proxy_and_reset(toxiproxy: Toxiproxy) -> None:
    listen = f"127.0.0.1:{free_port()}"
    proxy = toxiproxy.create(upstream="127.0.0.1:1", name="p", listen=listen, enabled=False)
    proxy.add_toxic(type="latency", attributes={"latency": 123})
    assert proxy.get_toxic("latency_downstream").attributes == {"latency": 123, "jitter": 0}
    assert toxiproxy.reset()
    after = toxiproxy.get_proxy("p")
    assert (after.listen, after.enabled) == (listen, True)
    assert after.toxics() == {}
    assert listening(listen)


def test_destroy_toxic_and_proxy(toxiproxy: Toxiproxy) -> None:
    proxy = toxiproxy.create(upstream="127.0.0.1:1", name="p")
    proxy.add_toxic(type="latency", name="latency_downstream", attributes={"latency": 10})
    proxy.add_toxic(type="latency", name="second_latency_downstream", attributes={"latency": 10})
    assert set(proxy.toxics()) == {"latency_downstream", "second_latency_downstream"}
    assert proxy.destroy_toxic("latency_downstream")
    assert set(proxy.toxics()) == {"second_latency_downstream"}
    assert toxiproxy.destroy(proxy)
    assert toxiproxy.proxies() == {}


def test_invalid_stream_and_not_found(toxiproxy: Toxiproxy) -> None:
    proxy = toxiproxy.create(upstream="127.0.0.1:1", name="p")
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="latency", stream="lolstream")
    assert toxiproxy.destroy(proxy)
    with pytest.raises(NotFound):
        proxy.toxics()


def test_latency_both_ways_in_an_echo_round_trip(toxiproxy: Toxiproxy, echo) -> None:
    proxy = toxiproxy.create(upstream=echo.address, name="p")
    proxy.add_toxic(type="latency", stream="upstream", attributes={"latency": 100})
    proxy.add_toxic(type="latency", stream="downstream", attributes={"latency": 100})
    info = toxiproxy.get_proxy("p")
    with connect({"listen": info.listen}) as sock:
        started = time.perf_counter()
        sock.sendall(b"hello\n")
        assert recv_exactly(sock, 6) == b"hello\n"
        elapsed = time.perf_counter() - started
    assert 0.195 <= elapsed < 0.5, elapsed
