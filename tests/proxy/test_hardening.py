"""A proxy can not be pointed at itself, holds a bounded number of connections, and answers
bad bodies with 400 (regressions: a self-pointing proxy dialled itself until descriptors ran
out; a deeply nested body was a 500)."""
from __future__ import annotations

import socket

import pytest

from harness.proxy.process import start_proxy
from tests.proxy.conftest import Api, connect, free_port, listening


@pytest.mark.parametrize("where", ["itself", "the api", "another proxy"])
def test_an_upstream_that_is_one_of_our_listeners_is_refused(api: Api, echo, where: str) -> None:
    other = api.create("other", echo.address)
    port = free_port()
    upstream = {"itself": f"127.0.0.1:{port}", "the api": api.url.removeprefix("http://"),
                "another proxy": other["listen"]}[where]
    r = api.post("/proxies", {"name": "loop", "listen": f"127.0.0.1:{port}", "upstream": upstream})
    assert r.status_code == 400, r.text
    assert "own listeners" in r.json()["error"] and upstream in r.json()["error"]
    assert api.get("/proxies/loop").status_code == 404 and not listening(f"127.0.0.1:{port}")
    assert api.get("/proxies/other").json()["enabled"]


def test_a_loop_through_an_update_or_populate_is_refused(api: Api, echo) -> None:
    a = api.create("a", echo.address)
    r = api.post("/proxies/a", {"upstream": a["listen"]})
    assert r.status_code == 400 and "own listeners" in r.json()["error"]
    port = free_port()
    r = api.post("/populate", [{"name": "b", "listen": f"127.0.0.1:{port}", "upstream": f"localhost:{port}"}])
    assert r.status_code == 400 and "own listeners" in r.json()["error"]
    # a new proxy listening where an existing one dials would close the loop from the other end
    api.create("c", f"127.0.0.1:{port}")  # nothing there yet: allowed, its dials fail as upstream's do
    r = api.post("/proxies", {"name": "d", "listen": f"127.0.0.1:{port}", "upstream": echo.address})
    assert r.status_code == 400 and "proxy c upstream" in r.json()["error"]
    assert not listening(f"127.0.0.1:{port}")


def test_a_deeply_nested_body_is_400(api: Api) -> None:
    r = api.post("/proxies", raw=b"[" * 100_000 + b"]" * 100_000)
    assert r.status_code == 400 and "exceeded max depth" in r.json()["error"]
    r = api.post("/populate", raw=b'{"a":' * 50_000 + b"1" + b"}" * 50_000)
    assert r.status_code == 400


def test_one_proxy_holds_a_bounded_number_of_connections(echo) -> None:
    with start_proxy(seed=1, max_connections_per_proxy=3) as process:
        api = Api(process.api_url)
        proxy = api.create("p", echo.address)
        held = [connect(proxy) for _ in range(3)]
        for sock in held:
            sock.sendall(b"hi")
            assert sock.recv(2) == b"hi"
        extra = None
        with pytest.raises((ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
            # the proxy resets it as soon as it accepts it: on a busy machine that can be before
            # connect() has seen its own handshake through, so the reset may come from connect()
            extra = connect(proxy)
            extra.sendall(b"hi")
            if not extra.recv(2):
                raise ConnectionResetError("closed")
        if extra is not None:
            extra.close()
        held.pop().close()  # a slot frees up
        for _ in range(50):  # the freed slot shows once the proxy has seen the close: until then, a reset
            try:
                again = connect(proxy)
            except OSError:
                continue
            try:
                again.sendall(b"ok")
                if again.recv(2) == b"ok":
                    break
            except OSError:
                pass
            again.close()
        else:
            raise AssertionError("a freed slot never took a new connection")
        for sock in held + [again]:
            sock.close()
