"""Toxiproxy's HTTP API (v2.12.0) on aiohttp: routes, status codes and bodies.

Shapes follow upstream byte for byte where clients can tell: compact JSON
without a trailing newline for results, `{"error","status"}` plus newline for
errors, `{"version": "..."}` plus newline for the version, Go's router answers
for unknown paths (404 text) and wrong methods (405, empty), a request id on
every matched route and 403 for browser user agents (anti-CSRF).
Deliberate choices among upstream quirks (research §7): the `Logger: {}` leak is
not emitted, `stream` is echoed lower-cased and `/populate` lists no proxies as
`[]` rather than `null`.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
from typing import Any, Awaitable, Callable

from aiohttp import web

from harness.proxy import errors
from harness.proxy.gojson import decode, expect_object, fields
from harness.proxy.metrics import render as render_metrics
from harness.proxy.proxy import PopulateError, ProxyCollection

VERSION = "2.12.0"
HANDLER_TIMEOUT = 25.0
COLLECTION = web.AppKey("collection", ProxyCollection)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(value: Any, status: int = 200) -> web.Response:
    body = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    return web.Response(status=status, body=body, headers={"Content-Type": "application/json"})


def _error(exc: errors.ApiError, extra: dict[str, Any] | None = None) -> web.Response:
    payload: dict[str, Any] = {"error": exc.message, "status": exc.status}
    payload.update(extra or {})
    body = (json.dumps(payload, separators=(",", ":")) + "\n").encode()
    headers = {"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"}
    return web.Response(status=exc.status, body=body, headers=headers)


def _request_id() -> str:
    return base64.b32hexencode(os.urandom(12)).decode().lower().rstrip("=")


@web.middleware
async def _upstream_semantics(request: web.Request, handler: Handler) -> web.StreamResponse:
    failure = request.match_info.http_exception
    if failure is not None:
        if failure.status == 405:
            return web.Response(status=405, body=b"")
        return web.Response(status=404, body=b"404 page not found\n", headers={"Content-Type": "text/plain; charset=utf-8"})
    headers = {"X-Toxiproxy-Request-Id": _request_id()}
    if request.headers.get("User-Agent", "").startswith("Mozilla/"):
        resp = web.Response(status=403, body=b"User agent not allowed\n", headers={"Content-Type": "text/plain; charset=utf-8"})
    else:
        try:
            async with asyncio.timeout(HANDLER_TIMEOUT):
                resp = await handler(request)
        except errors.ApiError as exc:
            resp = _error(exc)
        except TimeoutError:
            resp = web.Response(status=503, body=b"")
    resp.headers.update(headers)
    return resp


async def _body(request: web.Request) -> Any:
    return decode(await request.read())


def _proxy_fields(body: Any) -> dict[str, Any]:
    obj = expect_object(body, "proxy")
    return fields(obj, {"name": str, "listen": str, "upstream": str, "enabled": bool}, "proxy")


async def version(request: web.Request) -> web.Response:
    body = json.dumps({"version": VERSION}) + "\n"
    return web.Response(body=body.encode(), headers={"Content-Type": "application/json;charset=utf-8"})


async def reset(request: web.Request) -> web.Response:
    coll = request.app[COLLECTION]
    async with coll.lock:
        await coll.reset()
    return web.Response(status=204)


async def proxy_index(request: web.Request) -> web.Response:
    coll = request.app[COLLECTION]
    return _json({name: coll.proxies[name].to_json() for name in sorted(coll.proxies)})


async def proxy_create(request: web.Request) -> web.Response:
    coll = request.app[COLLECTION]
    spec = _proxy_fields(await _body(request))
    if not spec.get("name"):
        raise errors.MISSING_FIELD.with_detail("name")
    if not spec.get("upstream"):
        raise errors.MISSING_FIELD.with_detail("upstream")
    async with coll.lock:
        proxy = await coll.create(spec["name"], spec.get("listen", ""), spec["upstream"], spec.get("enabled", True))
    return _json(proxy.to_json(), status=201)


def validate_populate(body: Any) -> list[dict[str, Any]]:
    """Check every entry before touching anything (upstream: nothing is created on a bad entry)."""
    if not isinstance(body, list):
        raise errors.BAD_REQUEST_BODY.with_detail(
            "json: cannot unmarshal object into Go value of type []proxy" if isinstance(body, dict) else "expected an array of proxies"
        )
    entries = []
    for i, item in enumerate(body, start=1):
        spec = _proxy_fields(item)
        if not spec.get("name"):
            raise errors.MISSING_FIELD.with_detail(f"name at proxy {i}")
        if not spec.get("upstream"):
            raise errors.MISSING_FIELD.with_detail(f"upstream at proxy {i}")
        spec.setdefault("listen", "")
        spec.setdefault("enabled", True)
        entries.append(spec)
    return entries


async def populate(request: web.Request) -> web.Response:
    coll = request.app[COLLECTION]
    entries = validate_populate(await _body(request))
    async with coll.lock:
        try:
            done = await coll.populate(entries)
        except PopulateError as exc:
            return _error(exc.error, {"proxies": [p.to_json() for p in exc.done]})
    return _json({"proxies": [p.to_json() for p in done]}, status=201)


async def proxy_show(request: web.Request) -> web.Response:
    return _json(request.app[COLLECTION].get(request.match_info["proxy"]).to_json())


async def proxy_update(request: web.Request) -> web.Response:
    coll = request.app[COLLECTION]
    proxy = coll.get(request.match_info["proxy"])
    spec = _proxy_fields(await _body(request))
    async with coll.lock:
        await coll.update(
            proxy,
            spec.get("listen", proxy.listen),
            spec.get("upstream", proxy.upstream),
            spec.get("enabled", proxy.enabled),
        )
    return _json(proxy.to_json())


async def proxy_delete(request: web.Request) -> web.Response:
    coll = request.app[COLLECTION]
    async with coll.lock:
        coll.delete(request.match_info["proxy"])
    return web.Response(status=204)


async def toxic_index(request: web.Request) -> web.Response:
    proxy = request.app[COLLECTION].get(request.match_info["proxy"])
    return _json([t.to_json() for t in proxy.all_toxics()])


async def toxic_create(request: web.Request) -> web.Response:
    coll = request.app[COLLECTION]
    proxy = coll.get(request.match_info["proxy"])
    body = expect_object(await _body(request), "toxics.Toxic")
    async with coll.lock:
        toxic = coll.new_toxic(proxy, body)
        proxy.add_toxic(toxic)
    return _json(toxic.to_json())


async def toxic_show(request: web.Request) -> web.Response:
    proxy = request.app[COLLECTION].get(request.match_info["proxy"])
    return _json(proxy.find_toxic(request.match_info["toxic"]).to_json())


async def toxic_update(request: web.Request) -> web.Response:
    coll = request.app[COLLECTION]
    proxy = coll.get(request.match_info["proxy"])
    toxic = proxy.find_toxic(request.match_info["toxic"])
    body = expect_object(await _body(request), "toxics.Toxic")
    async with coll.lock:
        coll.update_toxic(proxy, toxic, body)
    return _json(toxic.to_json())


async def toxic_delete(request: web.Request) -> web.Response:
    coll = request.app[COLLECTION]
    proxy = coll.get(request.match_info["proxy"])
    toxic = proxy.find_toxic(request.match_info["toxic"])
    async with coll.lock:
        proxy.remove_toxic(toxic)
    return web.Response(status=204)


async def metrics(request: web.Request) -> web.Response:
    body, content_type = render_metrics(request.app[COLLECTION])
    return web.Response(body=body, headers={"Content-Type": content_type})


def make_app(collection: ProxyCollection) -> web.Application:
    app = web.Application(middlewares=[_upstream_semantics], client_max_size=16 * 1024 * 1024)
    app[COLLECTION] = collection
    r = app.router
    r.add_get("/version", version, allow_head=False)
    r.add_post("/reset", reset)
    r.add_get("/proxies", proxy_index, allow_head=False)
    r.add_post("/proxies", proxy_create)
    r.add_post("/populate", populate)
    r.add_get("/proxies/{proxy}", proxy_show, allow_head=False)
    r.add_post("/proxies/{proxy}", proxy_update)
    r.add_patch("/proxies/{proxy}", proxy_update)
    r.add_delete("/proxies/{proxy}", proxy_delete)
    r.add_get("/proxies/{proxy}/toxics", toxic_index, allow_head=False)
    r.add_post("/proxies/{proxy}/toxics", toxic_create)
    r.add_get("/proxies/{proxy}/toxics/{toxic}", toxic_show, allow_head=False)
    r.add_post("/proxies/{proxy}/toxics/{toxic}", toxic_update)
    r.add_patch("/proxies/{proxy}/toxics/{toxic}", toxic_update)
    r.add_delete("/proxies/{proxy}/toxics/{toxic}", toxic_delete)
    r.add_route("*", "/metrics", metrics)
    return app
