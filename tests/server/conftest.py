"""Real servers on ephemeral loopback ports, in-process (fast) or as `stormbench serve` subprocesses."""
from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect

from system.server.app import ChatServer
from system.server.config import ServerConfig
from system.server.logs import EventLog

ADMIN_KEY = "test-admin-key"
REPO = Path(__file__).resolve().parents[2]
# the console script's entry point, without depending on where the venv put `stormbench`
STORMBENCH = [sys.executable, "-c", "import sys; from commands.cli import main; sys.exit(main())"]


class Api:
    """HTTP calls the tests make against one server."""

    def __init__(self, http_url: str, ws_url: str, session: aiohttp.ClientSession, admin_key: str = ADMIN_KEY):
        self.http_url, self.ws_url, self.session, self.admin_key = http_url, ws_url, session, admin_key
        self.secrets: dict[str, str] = {}

    async def post(self, path: str, body=None, admin: bool = False) -> tuple[int, dict]:
        headers = {"X-Admin-Key": self.admin_key} if admin else {}
        async with self.session.post(self.http_url + path, json=body, headers=headers) as r:
            return r.status, await r.json(content_type=None)

    async def get(self, path: str, admin: bool = False, params=None) -> tuple[int, dict]:
        headers = {"X-Admin-Key": self.admin_key} if admin else {}
        async with self.session.get(self.http_url + path, headers=headers, params=params) as r:
            return r.status, await r.json(content_type=None)

    async def metrics_text(self) -> str:
        async with self.session.get(self.http_url + "/metrics") as r:
            return await r.text()

    async def secret(self, user: str) -> str:
        """The user's secret, creating the user through the admin API on first use."""
        if user not in self.secrets:
            status, body = await self.post("/admin/users", {"users": [user]}, admin=True)
            assert status == 200, body
            self.secrets[user] = body["users"][user]
        return self.secrets[user]

    async def token(self, user: str = "alice") -> dict:
        status, body = await self.post("/auth/token", {"user": user, "secret": await self.secret(user)})
        assert status == 200, body
        return body

    def connect(self, conversation: str, token: str | None, **kwargs):
        query = f"?token={token}" if token is not None else ""
        return connect(f"{self.ws_url}/ws/chat/{conversation}{query}", **kwargs)

    async def stats(self) -> dict:
        return (await self.get("/admin/stats", admin=True))[1]


async def recv_json(ws: ClientConnection, timeout: float = 5.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_until(ws: ClientConnection, type_: str, timeout: float = 5.0) -> dict:
    """The next frame of `type_`, skipping others (e.g. chat_status), within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        frame = await recv_json(ws, max(0.01, deadline - time.monotonic()))
        if frame["type"] == type_:
            return frame


async def closed_code(ws: ClientConnection, timeout: float = 5.0) -> int | None:
    """Wait for the connection to close (draining frames) and return the code the server sent."""
    async def drain():
        async for _ in ws:
            pass
    try:
        await asyncio.wait_for(drain(), timeout)
    except Exception:  # ConnectionClosedError ends the drain too
        pass
    await asyncio.wait_for(ws.wait_closed(), timeout)
    return ws.close_code


async def eventually(predicate, timeout: float = 5.0, interval: float = 0.02):
    """Poll an async predicate until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(interval)


@pytest.fixture
async def http_session():
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def make_server(tmp_path, http_session):
    """make(agent=None, **ServerConfig overrides) -> (ChatServer, Api); every server is shut down after the test."""
    servers: list[ChatServer] = []
    log = open(tmp_path / "server.log.jsonl", "a")

    async def make(agent=None, **overrides) -> tuple[ChatServer, Api]:
        overrides.setdefault("db_path", tmp_path / f"server{len(servers)}.db")
        overrides.setdefault("heartbeat_interval", None)
        config = ServerConfig(admin_key=ADMIN_KEY, **overrides)
        server = ChatServer(config, EventLog(log), agent=agent)
        await server.start()
        servers.append(server)
        return server, Api(server.http_url, server.ws_url, http_session)

    yield make
    for server in servers:
        await server.shutdown()
    log.close()


@dataclass
class ServeProcess:
    proc: subprocess.Popen
    ready: dict
    log_path: Path

    @property
    def ws_url(self) -> str:
        return self.ready["ws_url"]

    @property
    def http_url(self) -> str:
        return self.ready["http_url"]


@pytest.fixture
def spawn_serve(tmp_path):
    """spawn(*flags) -> ServeProcess once its ready line is read; killed in teardown."""
    procs: list[subprocess.Popen] = []

    def spawn(*flags: str, env: dict | None = None, preexec_fn=None) -> ServeProcess:
        if "--agent" not in flags:
            flags = ("--agent", "echo", *flags)  # the server's own behaviour, not the agent's
        log_path = tmp_path / f"serve{len(procs)}.log.jsonl"
        proc = subprocess.Popen(
            [*STORMBENCH, "serve", "--log-file", str(log_path), *flags],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
            env={**os.environ, **(env or {})}, preexec_fn=preexec_fn)
        procs.append(proc)
        readable, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if readable else ""
        if not line:
            proc.kill()
            raise AssertionError(f"serve exited before ready: rc={proc.wait(10)} stderr={proc.stderr.read()}")
        return ServeProcess(proc, json.loads(line), log_path)

    yield spawn
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
