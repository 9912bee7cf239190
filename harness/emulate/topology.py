"""The system under test as the fleet sees it: one server, and per client group a pair of
proxies (WebSocket and HTTP) in front of it.

Every client reaches the server through its group's proxies, so a network fault on
a fraction of the groups hits that fraction of the clients and nobody else. The
server is a `stormbench serve` subprocess (or an existing system given as
`--target`); the proxies live in one `stormbench proxy` subprocess (or a real
Toxiproxy given as `--toxiproxy-url`) and are driven with the real
`toxiproxy-python` client. Restarts reuse the same `--db`, admin key and ports, so
the proxies' upstreams stay valid and tokens issued before the restart still verify.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from toxiproxy import Toxiproxy

from harness.emulate.procs import ManagedProcess, stormbench_argv


@dataclass
class ServerOptions:
    """`stormbench serve` flags, durations already in wall seconds."""

    legacy: bool = False
    legacy_traits: tuple[str, ...] = ()
    token_ttl: float | None = None
    refresh_ttl: float | None = None
    heartbeat_interval: float | None = None
    heartbeat_timeout: float | None = None
    live_expiry: bool = False
    expiry_grace: float | None = None
    max_connections: int | None = None
    handshake_rate: float | None = None
    auth_user_rate: float | None = None     # None: the server's default
    auth_address_limit: bool = True         # False: no per-address limit (a fleet from one address)
    agent: str | None = None
    db: Path | None = None
    admin_key: str = field(default_factory=lambda: secrets.token_hex(16))

    def argv(self, port: int = 0, http_port: int = 0) -> list[str]:
        a = ["serve", "--host", "127.0.0.1", "--port", str(port), "--http-port", str(http_port),
             "--admin-key", self.admin_key]
        if self.legacy:
            a.append("--legacy")
        for t in self.legacy_traits:
            a += ["--legacy-trait", t]
        for flag, value in (("--token-ttl", self.token_ttl), ("--refresh-ttl", self.refresh_ttl),
                            ("--heartbeat-interval", self.heartbeat_interval),
                            ("--heartbeat-timeout", self.heartbeat_timeout),
                            ("--expiry-grace", self.expiry_grace),
                            ("--max-connections", self.max_connections),
                            ("--handshake-rate", self.handshake_rate),
                            ("--auth-user-rate", self.auth_user_rate)):
            if value is not None:
                a += [flag, _number(value)]
        if not self.auth_address_limit:
            a += ["--auth-address-rate", "off"]
        if self.live_expiry:
            a.append("--live-expiry")
        if self.agent:
            a += ["--agent", self.agent]
        if self.db is not None:
            a += ["--db", str(self.db)]
        return a


def _number(value: float | int) -> str:
    """A flag value the server's parsers accept: plain decimals, never exponents."""
    if isinstance(value, int):
        return str(value)
    return (f"{value:.6f}".rstrip("0").rstrip(".")) or "0"


@dataclass(frozen=True)
class Endpoints:
    """Where a server listens: its WebSocket base URL and its HTTP base URL."""

    ws_url: str
    http_url: str

    @property
    def ws_hostport(self) -> str:
        return urlsplit(self.ws_url).netloc

    @property
    def http_hostport(self) -> str:
        return urlsplit(self.http_url).netloc


def endpoints_from_ready(ready: dict[str, Any]) -> Endpoints:
    """The server's ready line → its endpoints (accepts URLs or bare ports)."""
    host = ready.get("host", "127.0.0.1")
    ws = ready.get("ws_url") or (f"ws://{host}:{ready['port']}" if "port" in ready else None)
    http = ready.get("http_url") or (f"http://{host}:{ready['http_port']}" if "http_port" in ready else None)
    if not ws or not http:
        raise RuntimeError(f"server ready line lacks ws_url/http_url (or port/http_port): {ready}")
    return Endpoints(ws.rstrip("/"), http.rstrip("/"))


class ServerControl:
    """Starts, stops and restarts one `stormbench serve` subprocess on stable ports."""

    def __init__(self, options: ServerOptions, log_dir: Path, ready_timeout: float = 30.0) -> None:
        self.options = options
        self.log_dir = log_dir
        self.ready_timeout = ready_timeout
        self.proc: ManagedProcess | None = None
        self.endpoints: Endpoints | None = None
        self.generation = 0
        self.pids: list[int] = []

    def start(self) -> Endpoints:
        port = http_port = 0
        if self.endpoints is not None:  # a restart: same ports, so the proxies need no change
            port = int(self.endpoints.ws_hostport.rsplit(":", 1)[1])
            http_port = int(self.endpoints.http_hostport.rsplit(":", 1)[1])
        self.proc = ManagedProcess(stormbench_argv(*self.options.argv(port, http_port)),
                                   name=f"server#{self.generation}", ready_timeout=self.ready_timeout,
                                   log_path=self.log_dir / f"server-{self.generation}.log").start()
        self.generation += 1
        self.pids.append(self.proc.pid or 0)
        self.endpoints = endpoints_from_ready(self.proc.ready)
        return self.endpoints

    def stop(self, crash: bool = False) -> int | None:
        """Graceful (SIGTERM: the server closes every socket with 1012) or a crash (SIGKILL)."""
        if self.proc is None:
            return None
        code = self.proc.kill() if crash else self.proc.stop(grace=10.0)
        self.proc = None
        return code

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.alive()


class ProxyControl:
    """The per-group proxies, created and driven through the Toxiproxy HTTP API."""

    def __init__(self, api_url: str, groups: int) -> None:
        parts = urlsplit(api_url)
        self.api_url = api_url.rstrip("/")
        self.client = Toxiproxy()
        self.client.update_api_consumer(parts.hostname or "127.0.0.1", parts.port or 8474)
        self.groups = groups
        self.listen: dict[str, str] = {}

    @staticmethod
    def names(group: int) -> tuple[str, str]:
        return f"g{group:02d}-ws", f"g{group:02d}-http"

    def create(self, server: Endpoints) -> None:
        for g in range(self.groups):
            ws_name, http_name = self.names(g)
            for name, upstream in ((ws_name, server.ws_hostport), (http_name, server.http_hostport)):
                existing = self.client.get_proxy(name)
                if existing is not None:
                    existing.destroy()
                proxy = self.client.create(upstream=upstream, name=name, listen="127.0.0.1:0")
                self.listen[name] = proxy.listen

    def group_endpoints(self, group: int, server: Endpoints) -> Endpoints:
        """The URLs a client of `group` uses: the server's paths through the group's proxies."""
        ws_name, http_name = self.names(group)
        ws = urlsplit(server.ws_url)._replace(netloc=self.listen[ws_name]).geturl()
        http = urlsplit(server.http_url)._replace(netloc=self.listen[http_name]).geturl()
        return Endpoints(ws, http)

    def destroy_all(self) -> None:
        for name in list(self.listen):
            proxy = self.client.get_proxy(name)
            if proxy is not None:
                proxy.destroy()
        self.listen.clear()


def start_proxy_process(log_dir: Path, seed: int | None, ready_timeout: float = 20.0) -> ManagedProcess:
    """`stormbench proxy` on a free API port; its ready line carries `api_url`."""
    argv = ["proxy", "--host", "127.0.0.1", "--port", "0"]
    if seed is not None:
        argv += ["--seed", str(seed)]
    return ManagedProcess(stormbench_argv(*argv), name="proxy", ready_timeout=ready_timeout,
                          log_path=log_dir / "proxy.log").start()
