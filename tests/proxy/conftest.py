"""Black-box fixtures: `stormbench proxy` as a real subprocess, real loopback servers.

One proxy process serves the whole session (start-up costs a few hundred ms);
every test starts from an empty proxy list, as a fresh server would.
"""
from __future__ import annotations

import queue
import socket
import threading
import time
from typing import Any, Iterator

import pytest
import requests
from toxiproxy.api import APIConsumer

from harness.proxy.process import ProxyProcess, start_proxy

UA = {"User-Agent": "toxiproxy-cli"}
SEED = 7


class Api:
    """Raw HTTP to the proxy's API, with the Go client's user agent."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.headers.update(UA)

    def request(self, method: str, path: str, body: Any = None, raw: bytes | None = None, **kw: Any) -> requests.Response:
        if raw is not None:
            kw["data"] = raw
        elif body is not None:
            kw["json"] = body
        return self.session.request(method, self.url + path, timeout=10, **kw)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> requests.Response:
        return self.request("POST", path, body, **kw)

    def patch(self, path: str, body: Any = None, **kw: Any) -> requests.Response:
        return self.request("PATCH", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.request("DELETE", path, **kw)

    def create(self, name: str, upstream: str, listen: str = "127.0.0.1:0", enabled: bool = True) -> dict[str, Any]:
        r = self.post("/proxies", {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled})
        assert r.status_code == 201, r.text
        return r.json()

    def add_toxic(self, proxy: str, **toxic: Any) -> dict[str, Any]:
        r = self.post(f"/proxies/{proxy}/toxics", toxic)
        assert r.status_code == 200, r.text
        return r.json()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=1):
            return True
    except OSError:
        return False


def wait_until(predicate: Any, timeout: float = 2.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


class Upstream:
    """A TCP server on a free loopback port that echoes, or hands each accepted socket to the test."""

    def __init__(self, echo: bool) -> None:
        self.echo = echo
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.accepted: queue.Queue[socket.socket] = queue.Queue()
        self._open: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._open.append(conn)
            if self.echo:
                threading.Thread(target=self._echo, args=(conn,), daemon=True).start()
            else:
                self.accepted.put(conn)

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass
        finally:
            conn.close()

    def accept(self, timeout: float = 2.0) -> socket.socket:
        conn = self.accepted.get(timeout=timeout)
        conn.settimeout(timeout)
        return conn

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        for conn in self._open:
            try:
                conn.close()
            except OSError:
                pass


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        data = sock.recv(n - len(buf))
        if not data:
            raise AssertionError(f"EOF after {len(buf)} of {n} bytes")
        buf += data
    return buf


def recv_all(sock: socket.socket) -> bytes:
    """Everything until EOF."""
    chunks = []
    while data := sock.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


@pytest.fixture(scope="session")
def proxy_process() -> Iterator[ProxyProcess]:
    proc = start_proxy(seed=SEED)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def api(proxy_process: ProxyProcess) -> Iterator[Api]:
    client = Api(proxy_process.api_url)
    for name in client.get("/proxies").json():
        client.delete(f"/proxies/{name}")
    APIConsumer.host, APIConsumer.port = proxy_process.host, proxy_process.port
    yield client
    client.session.close()


@pytest.fixture
def echo() -> Iterator[Upstream]:
    server = Upstream(echo=True)
    yield server
    server.close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream(echo=False)
    yield server
    server.close()


def connect(proxy: dict[str, Any], timeout: float = 2.0) -> socket.socket:
    host, _, port = proxy["listen"].rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock
