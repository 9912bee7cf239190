"""One server process: the WebSocket listener and the HTTP listener on one event loop,
started together and shut down together (1012 to everyone, or abruptly when legacy)."""
from __future__ import annotations

import asyncio
import signal

from aiohttp import web
from websockets.asyncio.server import Server, serve

from system.server.agent_port import AgentBackend
from system.server.config import ServerConfig
from system.server.fdlimit import accept_backlog, ceiling, guarded_connection, raise_soft_limit
from system.server.flow import SendWatchdog
from system.server.http_api import build_app
from system.server.keepalive import keepalive_connection
from system.server.lifecycle import shutdown
from system.server.logs import EventLog
from system.server.state import ServerState
from system.server.ws import ChatHandler


class ChatServer:
    def __init__(self, config: ServerConfig, log: EventLog | None = None,
                 agent: AgentBackend | None = None) -> None:
        self.config = config
        self.fd_limit = raise_soft_limit()  # before the state derives its default max_connections from it
        self.state = ServerState(config, log or EventLog(), agent)
        self.handler = ChatHandler(self.state)
        self._ws: Server | None = None
        self._runner: web.AppRunner | None = None
        self._stopped = False
        self._watch: asyncio.Task | None = None
        self._owed: asyncio.Task | None = None
        self.ws_url = self.http_url = ""

    async def start(self) -> None:
        cfg = self.config
        self._ws = await serve(
            self.handler.handler, cfg.host, cfg.port,
            process_request=self.handler.process_request,
            max_size=cfg.max_frame_bytes, compression=None,
            ping_interval=cfg.heartbeat_interval, ping_timeout=cfg.heartbeat_timeout,
            close_timeout=cfg.close_timeout, server_header=None, backlog=accept_backlog(self.fd_limit),
            create_connection=guarded_connection(ceiling(self.fd_limit), self.state.accepting, keepalive_connection(
                self.state.metrics["ws_messages_total"].labels(direction="out", type="keepalive_ping"),
                cfg.close_timeout)))
        self.state.accepting.server = self._ws.server
        ws_port = self._ws.sockets[0].getsockname()[1]
        self._runner = web.AppRunner(build_app(self.state), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, cfg.host, cfg.http_port)
        await site.start()
        http_port = self._runner.addresses[0][1]
        self.ws_url = f"ws://{cfg.host}:{ws_port}"
        self.http_url = f"http://{cfg.host}:{http_port}"
        self._watchdog = SendWatchdog(self.handler.buffers, cfg.close_timeout)
        self._watch = asyncio.get_running_loop().create_task(
            self._watchdog.run(lambda: [s.ws for s in self.state.sessions.values()]))
        self.state.log.event("listening", ws_url=self.ws_url, http_url=self.http_url,
                             legacy_traits=sorted(cfg.legacy_traits))
        # what a previous run acked and never answered, answered before or beside the reconnects
        self._owed = asyncio.get_running_loop().create_task(self.handler.answer_unanswered(cfg.answer_unanswered))

    async def shutdown(self, crash: bool = False) -> None:
        """Stop accepting, then close every connection with 1012 (fixed) or drop them
        without a close frame (legacy abrupt_shutdown, or `crash`: what a killed process's
        peers see), then stop HTTP. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        for task in (self._watch, self._owed):
            if task is not None:
                task.cancel()
        if self._ws is not None:
            self._ws.close(close_connections=False)
            connections = list(self._ws.connections)
            outcome = shutdown(frozenset(self.config.legacy_traits), crash=crash)
            self.state.log.event("shutdown", connections=len(connections), abrupt=outcome.kind == "abort")
            for connection in connections:
                if outcome.kind == "abort":
                    connection.transport.abort()
                else:
                    asyncio.get_running_loop().create_task(connection.close(outcome.code, outcome.reason))
            try:
                await asyncio.wait_for(self._ws.wait_closed(), self.config.shutdown_timeout)
            except TimeoutError:
                self.state.log.event("shutdown_timeout", pending=len(self._ws.connections))
        if self._runner is not None:
            await self._runner.cleanup()
        self.state.close(crash)

    async def __aenter__(self) -> "ChatServer":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.shutdown()


async def serve_until_signalled(server: ChatServer, announce) -> None:
    """Start, call `announce(server)` once both listeners are up, run until SIGTERM/SIGINT."""
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    announce(server)
    await stop.wait()
    await server.shutdown()
