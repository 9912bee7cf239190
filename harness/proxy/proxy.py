"""Proxies, their toxics, and the collection the HTTP API edits.

Every operation here is what one API call does, with upstream Toxiproxy's
effects on live connections (shared/research/toxiproxy.md §1.3): disabling,
deleting or moving a proxy drops its connections; adding, updating or removing a
toxic changes the chains of the live connections at once and loses no byte.
"""
from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from harness.proxy import errors
from harness.proxy.gojson import expect_object, fields, float32
from harness.proxy.link import DOWNSTREAM, UPSTREAM, Connection
from harness.proxy.registry import TOXIC_TYPES
from harness.proxy.splice import Splicer

BACKLOG = 4096


@dataclass
class ToxicConfig:
    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, Any]
    serial: int = 0  # n-th toxic added to its proxy: a re-added toxic draws afresh

    def to_json(self) -> dict[str, Any]:
        return {
            "attributes": self.attributes,
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": float32(self.toxicity),
        }


class ByteCounter:
    """Bytes of one proxy and direction; a link forwarded by a splice thread adds its own while it runs."""

    __slots__ = ("received", "sent", "splicers")

    def __init__(self) -> None:
        self.received = 0
        self.sent = 0
        self.splicers: set[Splicer] = set()

    def totals(self) -> tuple[int, int]:
        """(received, sent) including the live splice threads' counts."""
        live = list(self.splicers)
        return self.received + sum(s.received for s in live), self.sent + sum(s.sent for s in live)


def _format(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def resolve(address: str, prefix: str = "") -> tuple[str, int]:
    """`host:port` to a bindable address; a missing host means 127.0.0.1 (never all interfaces)."""
    host, sep, port_text = address.rpartition(":")
    if not sep:
        raise errors.internal(f"{prefix}address {address}: missing port in address")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise errors.internal(f"{prefix}address {address}: invalid port")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if host in ("", "localhost"):
        return "127.0.0.1", int(port_text)
    try:
        return str(ipaddress.ip_address(host)), int(port_text)
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        raise errors.internal(f"{prefix}lookup {host}: no such host") from None
    return str(infos[0][4][0]), int(port_text)


_ANY = ("0.0.0.0", "::")


def _reaches(target: tuple[str, int], listener: tuple[str, int]) -> bool:
    """Whether dialling `target` lands on `listener` (a wildcard listener takes every local address)."""
    return target[1] == listener[1] and (target[0] == listener[0] or _ANY.count(listener[0]) + _ANY.count(target[0]) > 0)


async def _resolved(address: str) -> tuple[str, int] | None:
    """The address resolved, or None when it can not be (the dial will fail later, as upstream)."""
    try:
        return await resolve(address)
    except errors.ApiError:
        return None


class Proxy:
    def __init__(self, name: str, listen: str, upstream: str, seed: int, splice: bool = True,
                 max_connections: int | None = None) -> None:
        self.name, self.listen, self.upstream, self.seed = name, listen, upstream, seed
        self.splice = splice  # bulk links may leave the event loop for a splice thread
        self.max_connections = max_connections  # None: unbounded; beyond it new clients are reset
        self.refused = 0
        self.toxics: dict[str, list[ToxicConfig]] = {UPSTREAM: [], DOWNSTREAM: []}
        self.connections: set[Connection] = set()
        self.counters = {UPSTREAM: ByteCounter(), DOWNSTREAM: ByteCounter()}
        self.server: asyncio.Server | None = None
        self._accepted = 0
        self._toxics_added = 0

    @property
    def enabled(self) -> bool:
        return self.server is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [t.to_json() for t in self.all_toxics()],
        }

    def all_toxics(self) -> list[ToxicConfig]:
        return self.toxics[UPSTREAM] + self.toxics[DOWNSTREAM]

    def chain(self, direction: str) -> list[ToxicConfig]:
        return list(self.toxics[direction])

    def upstream_address(self) -> tuple[str, int]:
        host, _, port = self.upstream.rpartition(":")
        if not port.isdigit() or int(port) > 65535:
            raise ValueError(f"upstream {self.upstream!r} has no valid port")
        return (host.strip("[]") or "127.0.0.1"), int(port)

    def _new_connection(self) -> Any:
        self._accepted += 1
        return Connection(self, self._accepted).client

    async def start(self) -> None:
        if self.server is not None:
            return
        host, port = await resolve(self.listen, "listen tcp: ")
        loop = asyncio.get_running_loop()
        try:
            self.server = await loop.create_server(self._new_connection, host, port, backlog=BACKLOG)
        except OSError as exc:
            reason = (os.strerror(exc.errno) if exc.errno else str(exc)).lower()
            raise errors.internal(f"listen tcp {_format(host, port)}: bind: {reason}") from None
        bound = self.server.sockets[0].getsockname()
        self.listen = _format(bound[0], bound[1])

    def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for conn in list(self.connections):
            conn.close()

    async def differs(self, listen: str, upstream: str) -> bool:
        resolved = _format(*await resolve(listen))
        return resolved != self.listen or upstream != self.upstream

    def find_toxic(self, name: str) -> ToxicConfig:
        for toxic in self.all_toxics():
            if toxic.name == name:
                return toxic
        raise errors.TOXIC_NOT_FOUND

    def _links(self, direction: str) -> list[Any]:
        return [c.links[direction] for c in self.connections if c.links]

    def add_toxic(self, toxic: ToxicConfig) -> None:
        self._toxics_added += 1
        toxic.serial = self._toxics_added
        self.toxics[toxic.stream].append(toxic)
        for link in self._links(toxic.stream):
            link.add(toxic)

    def restart_toxic(self, toxic: ToxicConfig) -> None:
        for link in self._links(toxic.stream):
            link.restart(toxic.name)

    def remove_toxic(self, toxic: ToxicConfig) -> None:
        self.toxics[toxic.stream].remove(toxic)
        for link in self._links(toxic.stream):
            link.remove(toxic.name)


@dataclass
class PopulateError(Exception):
    error: errors.ApiError
    done: list[Proxy] = field(default_factory=list)


class ProxyCollection:
    """All proxies of one server, edited one API call at a time.

    `splice=False` keeps every byte on the event loop (no splice threads): what a loop on a
    virtual clock needs, where a thread's work would take no scenario time."""

    def __init__(self, seed: int, splice: bool = True, max_connections: int | None = None) -> None:
        self.seed = seed
        self.splice = splice
        self.max_connections = max_connections  # per proxy
        self.api_address: tuple[str, int] | None = None  # the HTTP API's, once bound
        self.proxies: dict[str, Proxy] = {}
        self.lock = asyncio.Lock()

    async def refuse_loops(self, proxy: Proxy) -> None:
        """400 when `proxy`'s upstream is one of this server's listeners (the API or any enabled
        proxy, itself included), or another proxy's upstream is `proxy`'s listener."""
        listeners = [("the API", self.api_address)] if self.api_address else []
        listeners += [(f"proxy {p.name}", await _resolved(p.listen)) for p in self.proxies.values() if p.enabled]
        if proxy.enabled:
            listeners.append((f"proxy {proxy.name}", await _resolved(proxy.listen)))
        target = await _resolved(proxy.upstream)
        for what, listener in listeners:
            if target is not None and listener is not None and _reaches(target, listener):
                raise errors.UPSTREAM_LOOP.with_detail(
                    f"proxy {proxy.name} upstream {proxy.upstream} is the listen address of {what}")
        mine = await _resolved(proxy.listen) if proxy.enabled else None
        for other in self.proxies.values():
            target = await _resolved(other.upstream) if other is not proxy and mine is not None else None
            if target is not None and _reaches(target, mine):
                raise errors.UPSTREAM_LOOP.with_detail(
                    f"proxy {other.name} upstream {other.upstream} is the listen address of proxy {proxy.name}")

    def get(self, name: str) -> Proxy:
        try:
            return self.proxies[name]
        except KeyError:
            raise errors.PROXY_NOT_FOUND from None

    async def create(self, name: str, listen: str, upstream: str, enabled: bool) -> Proxy:
        if name in self.proxies:
            raise errors.PROXY_EXISTS
        proxy = Proxy(name, listen, upstream, self.seed, self.splice, self.max_connections)
        if enabled:
            await proxy.start()
        try:
            await self.refuse_loops(proxy)
        except errors.ApiError:
            proxy.stop()
            raise
        self.proxies[name] = proxy
        return proxy

    async def update(self, proxy: Proxy, listen: str, upstream: str, enabled: bool) -> Proxy:
        if await proxy.differs(listen, upstream):
            proxy.stop()
            proxy.listen, proxy.upstream = listen, upstream
        if enabled and not proxy.enabled:
            await proxy.start()
        elif not enabled:
            proxy.stop()
        try:
            await self.refuse_loops(proxy)
        except errors.ApiError:
            proxy.stop()  # left disabled, its new addresses kept (as a failed start leaves it)
            raise
        return proxy

    def delete(self, name: str) -> None:
        self.get(name).stop()
        del self.proxies[name]

    async def populate(self, entries: list[dict[str, Any]]) -> list[Proxy]:
        """Entries are already validated; stops at the first failure (earlier ones stay)."""
        done: list[Proxy] = []
        for entry in entries:
            try:
                existing = self.proxies.get(entry["name"])
                if existing is not None and not await existing.differs(entry["listen"], entry["upstream"]):
                    done.append(existing)
                    continue
                if existing is not None:
                    self.delete(existing.name)
                done.append(await self.create(entry["name"], entry["listen"], entry["upstream"], entry["enabled"]))
            except errors.ApiError as exc:
                raise PopulateError(exc, done) from None
        return done

    async def reset(self) -> None:
        for proxy in list(self.proxies.values()):
            await proxy.start()
            for toxic in proxy.all_toxics():
                proxy.remove_toxic(toxic)

    def new_toxic(self, proxy: Proxy, body: dict[str, Any]) -> ToxicConfig:
        """Validate a toxic the way upstream does, in upstream's order of checks."""
        spec = fields(body, {"name": str, "type": str, "stream": str, "toxicity": float}, "toxic")
        stream = spec.get("stream", DOWNSTREAM).lower()
        if stream not in (UPSTREAM, DOWNSTREAM):
            raise errors.INVALID_STREAM
        kind = spec.get("type", "")
        name = spec.get("name") or f"{kind}_{stream}"
        if kind not in TOXIC_TYPES:
            raise errors.INVALID_TOXIC_TYPE
        if any(t.name == name for t in proxy.all_toxics()):
            raise errors.TOXIC_EXISTS
        toxic_type = TOXIC_TYPES[kind]
        attributes = toxic_type.zero_attributes()
        attributes.update(self._attributes(body, kind))
        return ToxicConfig(name, kind, stream, spec.get("toxicity", 1.0), self._checked(kind, attributes))

    def _attributes(self, body: dict[str, Any], kind: str) -> dict[str, Any]:
        raw = fields(body, {"attributes": object}, "toxic").get("attributes")
        if raw is None:
            return {}
        raw = expect_object(raw, f"toxics.{kind}")
        return fields(raw, TOXIC_TYPES[kind].attributes, kind)

    @staticmethod
    def _checked(kind: str, attributes: dict[str, Any]) -> dict[str, Any]:
        check = TOXIC_TYPES[kind].check
        problem = check(attributes) if check else None
        if problem:
            raise errors.BAD_REQUEST_BODY.with_detail(problem)
        return attributes

    def update_toxic(self, proxy: Proxy, toxic: ToxicConfig, body: dict[str, Any]) -> ToxicConfig:
        spec = fields(body, {"toxicity": float}, "toxic")
        attributes = dict(toxic.attributes)
        attributes.update(self._attributes(body, toxic.type))
        toxic.attributes = self._checked(toxic.type, attributes)
        toxic.toxicity = spec.get("toxicity", toxic.toxicity)
        proxy.restart_toxic(toxic)
        return toxic
