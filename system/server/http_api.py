"""The HTTP side (aiohttp): auth, health, metrics and the admin API the harness drives."""
from __future__ import annotations

import asyncio
import hmac
import json
from typing import Any

from aiohttp import web

from system import wire
from system.server.ratelimit import retry_after
from system.server.tokens import AuthError
from system.server.state import ServerState

STATE = web.AppKey("state", ServerState)
MAX_BODY = 64 * 1024        # bytes in a request body
MAX_USER = 128               # characters in a user name
MAX_USERS_PER_CALL = 1000  # users one POST /admin/users may create (the body stays under 64 KiB)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


async def _body(request: web.Request, fields: dict[str, tuple[type, ...]], required: tuple[str, ...]) -> dict:
    """The JSON object body with its fields type-checked; a 400 naming the field otherwise."""
    try:
        body = await request.json() if request.can_read_body else {}
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8 (UnicodeDecodeError), or nested too deep
        message = "body nests too deeply" if isinstance(exc, RecursionError) else f"body is not UTF-8 JSON: {exc}"
        raise web.HTTPBadRequest(text=json.dumps({"error": "invalid_json", "message": message}),
                                 content_type="application/json") from None
    except web.HTTPRequestEntityTooLarge:
        raise web.HTTPRequestEntityTooLarge(
            MAX_BODY, request.content_length or 0, content_type="application/json",
            text=json.dumps({"error": "too_large", "message": f"body: expected at most {MAX_BODY} bytes"})) from None
    if not isinstance(body, dict):
        raise _bad("(body)", "a JSON object")
    for name in required:
        if name not in body:
            raise _bad(name, "present")
    for name, types in fields.items():
        if name in body and (not isinstance(body[name], types) or isinstance(body[name], bool) and bool not in types):
            raise _bad(name, " or ".join(t.__name__ for t in types))
        if isinstance(body.get(name), str) and not _utf8(body[name]):
            raise _bad(name, "valid UTF-8 text (no lone surrogates)")
    return body


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _bad(field: str, expected: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(
        text=json.dumps({"error": "invalid_request", "message": f"field '{field}': expected {expected}"}),
        content_type="application/json")


def _limited(request: web.Request, user: str | None) -> web.Response | None:
    """429 with Retry-After when this address or user asks for tokens too often."""
    state = request.app[STATE]
    wait = state.auth_limited(request.remote, user)
    if not wait:
        return None
    state.log.event("auth_rate_limited", path=request.path, user=user, peer=request.remote)
    response = _error(429, "rate_limited", f"too many token requests: retry in {retry_after(wait)} s")
    response.headers["Retry-After"] = retry_after(wait)
    return response


@web.middleware
async def admin_guard(request: web.Request, handler):
    if request.path.startswith("/admin/"):
        key = request.headers.get("X-Admin-Key", "")
        given = key.encode("utf-8", "surrogateescape")  # a non-UTF-8 header is just a wrong key
        if not hmac.compare_digest(given, request.app[STATE].config.admin_key.encode()):
            return _error(403, "forbidden", "header X-Admin-Key missing or wrong")
    return await handler(request)


async def token(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.tokens.rules.outage:  # before the body is read, as a down IdP answers
        return _error(503, "auth_outage", "the auth service is unavailable")
    body = await _body(request, {"user": (str,), "secret": (str,)}, ("user", "secret"))
    user = body["user"]
    if not 0 < len(user) <= MAX_USER:
        raise _bad("user", f"a string of 1 to {MAX_USER} characters")
    limited = _limited(request, user)
    if limited is not None:
        return limited
    try:
        pair = state.tokens.issue(user, body["secret"])
    except AuthError as exc:
        state.log.event("token_refused", user=user, reason=exc.code)
        return _error(exc.status, exc.code, str(exc))
    state.metrics["auth_tokens_issued_total"].inc()
    state.log.event("token_issued", user=user)
    return web.json_response(pair)


async def refresh(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.tokens.rules.outage:
        state.metrics["auth_refresh_total"].labels(result="outage").inc()
        return _error(503, "auth_outage", "the auth service is unavailable")
    body = await _body(request, {"refresh_token": (str,)}, ("refresh_token",))
    limited = _limited(request, state.tokens.owner(body["refresh_token"]))
    if limited is not None:
        state.metrics["auth_refresh_total"].labels(result="rate_limited").inc()
        return limited
    try:
        pair = state.tokens.refresh(body["refresh_token"])
    except AuthError as exc:
        state.metrics["auth_refresh_total"].labels(result=exc.result).inc()
        hit = state.family_revoked(exc.family) if exc.family is not None else 0
        state.log.event("refresh_rejected", result=exc.result, live_sessions_expired=hit)
        return _error(exc.status, exc.code, str(exc))
    state.metrics["auth_refresh_total"].labels(result="ok").inc()
    state.metrics["auth_tokens_issued_total"].inc()
    return web.json_response(pair)


async def healthz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response({"status": "ok", "connections_active": len(state.sessions)})


async def metrics(request: web.Request) -> web.Response:
    payload, content_type = request.app[STATE].metrics.exposition()
    return web.Response(body=payload, headers={"Content-Type": content_type})


async def expire_tokens(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await _body(request, {"user": (str,)}, ())
    hit = state.expire_tokens(body.get("user"))
    state.log.event("admin_expire_tokens", user=body.get("user"), live_sessions=hit)
    return web.json_response({"expired": body.get("user", "*"), "live_sessions": hit})


async def auth_outage(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await _body(request, {"enabled": (bool,)}, ("enabled",))
    state.tokens.rules.outage = body["enabled"]
    state.log.event("admin_auth_outage", enabled=state.tokens.rules.outage)
    return web.json_response({"enabled": state.tokens.rules.outage})


async def drop(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await _body(request, {"fraction": (float, int), "code": (int,), "seed": (int,)}, ("fraction",))
    fraction, code = float(body["fraction"]), body.get("code")
    if not 0.0 <= fraction <= 1.0:
        raise _bad("fraction", "a number from 0 to 1")
    if code is not None and not (code in wire.SENDABLE or 3000 <= code <= 4999):
        raise _bad("code", "a close code a server may send (1000-1013 or 3000-4999)")
    chosen = state.pick_for_drop(fraction, body.get("seed"))
    for session in chosen:
        if code is None:
            session.ws.transport.abort()
        else:
            asyncio.get_running_loop().create_task(session.ws.close(code, "dropped by the server"))
    state.log.event("admin_drop", fraction=fraction, code=code, dropped=len(chosen))
    return web.json_response({"dropped": len(chosen), "code": code})


async def users(request: web.Request) -> web.Response:
    """Create users (or replace their secrets); each secret is shown here once."""
    state = request.app[STATE]
    body = await _body(request, {"users": (list,)}, ("users",))
    names = body["users"]
    if not 0 < len(names) <= MAX_USERS_PER_CALL or not all(
            isinstance(n, str) and 0 < len(n) <= MAX_USER and _utf8(n) for n in names):
        raise _bad("users", f"a list of 1 to {MAX_USERS_PER_CALL} user names of 1 to {MAX_USER} characters")
    issued = state.tokens.create_users(names)
    state.log.event("admin_users", created=len(issued))
    return web.json_response({"users": issued})


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].stats())


async def messages(request: web.Request) -> web.Response:
    state = request.app[STATE]
    since: Any = {}
    raw = request.query.get("since_seq_by_conversation")
    if raw:
        try:
            since = json.loads(raw)
        except json.JSONDecodeError:
            since = None
        if not isinstance(since, dict) or not all(isinstance(v, int) for v in since.values()):
            raise _bad("since_seq_by_conversation", 'a JSON object {"conversation_id": last_seq, ...}')
    log = state.store.delivery_log(since)
    return web.json_response({"messages": [
        {"conversation_id": m.conversation_id, "id": m.id, "seq": m.seq, "t": m.t} for m in log]})


async def user_messages(request: web.Request) -> web.Response:
    """Every user message the server received (the "received" side of the ledger)."""
    rows = request.app[STATE].store.user_messages()
    return web.json_response({"messages": [
        {"conversation_id": c, "id": i, "t": t, "answered": a} for c, i, t, a in rows]})


def build_app(state: ServerState) -> web.Application:
    app = web.Application(middlewares=[admin_guard], client_max_size=MAX_BODY)
    app[STATE] = state
    app.router.add_post("/auth/token", token)
    app.router.add_post("/auth/refresh", refresh)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/admin/expire-tokens", expire_tokens)
    app.router.add_post("/admin/auth-outage", auth_outage)
    app.router.add_post("/admin/drop", drop)
    app.router.add_post("/admin/users", users)
    app.router.add_get("/admin/stats", stats)
    app.router.add_get("/admin/messages", messages)
    app.router.add_get("/admin/user-messages", user_messages)
    return app
