"""The WebSocket side: handshake checks, the per-connection session loop, fan-out and replay.

Every server frame is pushed with websockets' synchronous `broadcast`, so a frame is in the
socket's buffer, in order, the moment it is logged. A `resume` replays in pages, draining the
socket between pages (`system.server.flow`); while it runs, live fan-out skips that socket and
the replay picks the new messages up from the log, so the two can not interleave out of seq order.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, broadcast
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from system import clock, wire
from system.server import delivery, handshake
from system.server.backpressure import SendBuffers, SendLimits
from system.server.flow import drained, keep_up
from system.server.frames import ACK_VERSION, FrameError, encode, parse_client_frame
from system.server.handshake import Outcome
from system.server.lifecycle import LiveExpiry
from system.server.ratelimit import Rate, TokenBucket
from system.server.state import ServerState, Session
from system.server.store import Receipt
from system.server.tokens import AuthError

PATH = re.compile(r"^/ws/chat/([A-Za-z0-9._~-]{1,128})$")


def parse_target(path: str) -> tuple[str | None, str | None]:
    """(conversation_id, token) from '/ws/chat/{id}?token=...'; None where absent or malformed."""
    url = urlsplit(path)
    match = PATH.match(url.path)
    token = parse_qs(url.query).get("token", [None])[0]
    return (match.group(1) if match else None), token


def close_code_of(ws: ServerConnection) -> int:
    """The code that ended the connection: the one the server sent when it closed first,
    else the peer's; 1006 when no close frame was exchanged."""
    p = ws.protocol
    if p.close_sent is not None and not p.close_rcvd_then_sent:
        return p.close_sent.code
    if p.close_rcvd is not None:
        return p.close_rcvd.code
    return wire.ABNORMAL


class ChatHandler:
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.cfg = state.config
        self.metrics = state.metrics
        self.traits = frozenset(state.config.legacy_traits)
        self.expiry = LiveExpiry(state.config.expiry_grace)
        self.buffers: SendBuffers[ServerConnection] = SendBuffers(SendLimits(
            self.cfg.max_send_buffer, self.cfg.send_timeout, self.cfg.replay_page))

    # handshake ---------------------------------------------------------
    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Before the upgrade: unknown paths get 404; the legacy server answers bad tokens and
        forbidden Origins with 403 here (the fixed one upgrades and closes with 4401/4403)."""
        self.state.handshakes += 1
        conversation_id, token = parse_target(request.path)
        auth, owner_ok = None, True
        if conversation_id is not None and "handshake_403" in self.traits:
            try:
                user = self.state.tokens.verify(token).user
                owner_ok = self.state.store.owner(conversation_id) in (None, user)
            except AuthError as exc:
                auth = exc
        outcome = handshake.before_upgrade(self.traits, path_ok=conversation_id is not None,
                                           origin_ok=self._origin_ok(request.headers), auth=auth, owner_ok=owner_ok)
        return None if outcome is None else self._reject(connection, HTTPStatus(outcome.status), outcome.reason)

    def _reject(self, connection: ServerConnection, status: HTTPStatus, reason: str) -> Response:
        self.metrics["ws_handshake_rejections_total"].labels(status=str(status.value)).inc()
        self.state.log.event("handshake_rejected", status=status.value, reason=reason,
                             peer=_peer(connection))
        return connection.respond(status, reason + "\n")

    def _origin_ok(self, headers: Headers) -> bool:
        return not self.cfg.allowed_origins or headers.get("Origin") in self.cfg.allowed_origins

    # connection --------------------------------------------------------
    async def handler(self, ws: ServerConnection) -> None:
        state, log = self.state, self.state.log
        conn_id = state.new_id()[:12]
        conversation_id, token = parse_target(ws.request.path)
        admitted, session, watcher = False, None, None
        try:
            admission = None
            if handshake.sheds(self.traits):
                admission = state.admission.admit(clock.monotonic())
                admitted = admission.accepted
            origin_ok = self._origin_ok(ws.request.headers)
            claims, auth, owner_ok, quota_ok = None, None, True, True
            try:
                claims = state.tokens.verify(token)
            except AuthError as exc:
                auth = exc
            # claiming a conversation is a write: only for a connection the checks before it let through
            if claims is not None and origin_ok and (admission is None or admitted):
                owner = state.store.claim(conversation_id, claims.user)
                owner_ok, quota_ok = owner in (None, claims.user), owner is not None
            outcome = handshake.after_upgrade(self.traits, admission=admission, origin_ok=origin_ok,
                                              auth=auth, owner_ok=owner_ok, quota_ok=quota_ok)
            if outcome.kind != "accept":
                if not (owner_ok and quota_ok):
                    log.event("forbidden_conversation" if not owner_ok else "conversation_limit", conn=conn_id,
                              user=claims.user, conversation=conversation_id, peer=_peer(ws))
                await self._act(ws, outcome)
                return
            session = Session(conn_id, ws, claims.user, conversation_id, clock.monotonic(), claims.expires_at,
                              resumes=TokenBucket(Rate(self.cfg.resume_rate, self.cfg.resume_burst), clock.monotonic()),
                              family=claims.family)
            state.add(session)
            self.metrics["ws_connections_opened_total"].inc()
            self.metrics["ws_connections_active"].inc()
            log.event("open", conn=conn_id, user=session.user, conversation=conversation_id, peer=_peer(ws))
            self._push([ws], "welcome", session_id=conn_id, conversation_id=conversation_id,
                       server_time=clock.now(), last_seq=state.store.last_seq(conversation_id))
            if self.cfg.live_expiry:
                watcher = asyncio.create_task(self._watch_expiry(session))
            async for raw in ws:
                await self._on_frame(session, raw)
        except ConnectionClosed:
            pass
        except Exception as exc:  # one connection's bug must not reach the others
            log.event("handler_error", conn=conn_id, error=f"{type(exc).__name__}: {exc}")
            await self._act(ws, handshake.refusal(self.traits, wire.INTERNAL_ERROR, None, "internal error"))
        finally:
            if watcher is not None:
                watcher.cancel()
            if admitted:
                state.admission.release(clock.monotonic())
            await ws.wait_closed()
            self._closed(ws, conn_id, session)

    async def _act(self, ws: ServerConnection, outcome: Outcome) -> None:
        """Carry out a refusal of the server core: its `error` frame, then its close, or an abort."""
        if outcome.kind == "abort":
            ws.transport.abort()
            return
        if outcome.error is not None:
            self._push([ws], "error", code=outcome.error, message=outcome.reason)
        await ws.close(outcome.code, outcome.error or outcome.reason)

    def _closed(self, ws: ServerConnection, conn_id: str, session: Session | None) -> None:
        self.buffers.closed(ws)
        code = close_code_of(ws)
        self.state.closes_by_code[code] = self.state.closes_by_code.get(code, 0) + 1
        self.metrics["ws_closes_total"].labels(code=str(code)).inc()
        fields = {"conn": conn_id, "code": code}
        if session is not None:
            self.state.remove(session)
            self.metrics["ws_connections_active"].dec()
            duration = clock.monotonic() - session.opened_at
            fields.update(user=session.user, conversation=session.conversation_id)
            if not self.cfg.legacy("no_duration_tracking"):
                self.metrics["ws_connection_duration_seconds"].observe(duration)
                fields["duration_s"] = round(duration, 3)
        self.state.log.event("close", **fields)

    async def _watch_expiry(self, session: Session) -> None:
        """Live expiry: once the token has expired, a fresh one must arrive in-band within the grace."""
        while True:
            session.expiry_changed.clear()
            now = clock.now()
            if self.expiry.due(now, session.expires_at):
                self.state.log.event("token_expired", conn=session.id, user=session.user)
                await self._act(session.ws, self.expiry.refuse(self.traits))
                return
            remaining = self.expiry.deadline(session.expires_at) - now
            try:
                await asyncio.wait_for(session.expiry_changed.wait(), remaining)
            except TimeoutError:
                pass

    # frames ------------------------------------------------------------
    async def _on_frame(self, session: Session, raw: str | bytes) -> None:
        try:
            frame = parse_client_frame(raw)
        except FrameError as exc:
            self.metrics["ws_messages_total"].labels(direction="in", type="invalid").inc()
            session.invalid_frames += 1
            self._push([session.ws], "error", code=exc.code, message=str(exc), ref=exc.ref)
            if session.invalid_frames >= self.cfg.max_invalid_frames:
                await self._act(session.ws, handshake.refusal(self.traits, wire.POLICY_VIOLATION, None, "too many invalid frames"))
            return
        kind = frame["type"]
        self.metrics["ws_messages_total"].labels(direction="in", type=kind).inc()
        if kind == "ping":
            self._push([session.ws], "pong")
        elif kind == "resume":
            wait = session.resumes.take(clock.monotonic())
            if wait:
                self._push([session.ws], "error", code="rate_limited", ref=frame["id"],
                           message=f"too many resume frames: retry in {wait:.1f} s")
            else:
                await self._replay(session, frame["last_seq"])
        elif kind == "auth_refresh":
            self._auth_refresh(session, frame)
        else:
            await self._converse(session, frame)

    async def _replay(self, session: Session, last_seq: int) -> None:
        """`seq > last_seq` in the core's pages (`SendBuffers.replay`), each drained before the next
        is read from the log, until the log has no more (live messages logged meanwhile included)."""
        pages = self.buffers.replay(last_seq)
        session.replaying = True
        try:
            while page := self.state.store.messages_after(session.conversation_id, pages.cursor, pages.size):
                for message in page:
                    self._send_logged([session.ws], message.frame)
                if not pages.page_done(page[-1].seq, len(page), await drained(session.ws, pages.drain_timeout)):
                    break
        finally:
            session.replaying = False
        self.state.log.event("resume", conn=session.id, last_seq=last_seq, replayed=pages.replayed,
                             complete=pages.complete)

    def _auth_refresh(self, session: Session, frame: dict) -> None:
        try:
            claims = self.state.tokens.verify(frame["token"])
            if claims.user != session.user:
                raise AuthError("auth_invalid", "token belongs to another user")
        except AuthError as exc:
            self._push([session.ws], "error", code=exc.code, message=str(exc), ref=frame["id"])
            return
        session.expires_at, session.family = claims.expires_at, claims.family
        session.expiry_changed.set()
        self.state.log.event("auth_refreshed", conn=session.id, user=session.user)

    async def _converse(self, session: Session, frame: dict) -> None:
        """Store the message, ack it (fixed), then answer it unless it is a resend of one answered
        or being answered (fixed: dropped by its id)."""
        conversation_id = session.conversation_id
        acks = delivery.acks(self.traits)
        receipt = self.state.store.receive(conversation_id, frame["id"], clock.now(), frame["text"], frame["v"])
        if acks:  # stored: the client may forget it (contract v1.1 adds this frame)
            self._push([session.ws], "ack", v=ACK_VERSION, ref=frame["id"])
            if self._taken(conversation_id, frame["id"]):
                self.state.log.event("duplicate_dropped", conn=session.id, ref=frame["id"])
                return
        await self._answer(receipt, [session.ws], conn=session.id)

    async def answer_unanswered(self, limit: int) -> int:
        """Answer up to `limit` stored messages that were never answered, oldest first: a server
        killed between a message's `ack` and its answer owes them (fixed only: a legacy server
        acks nothing and answers what it gets). Returns how many were answered."""
        if limit < 1 or not delivery.acks(self.traits):
            return 0
        answered = 0
        for receipt in self.state.store.unanswered(limit):
            if self._taken(receipt.conversation_id, receipt.id):
                continue  # resent since the start, and answered (or being answered) as such
            try:
                await self._answer(receipt, self._sockets(receipt.conversation_id), conn=None)
                answered += 1
            except Exception as exc:  # one message's failure must not keep the others unanswered
                self.state.log.event("handler_error", conversation=receipt.conversation_id,
                                     error=f"{type(exc).__name__}: {exc}")
        if answered:
            self.state.log.event("answered_unanswered", messages=answered, limit=limit)
        return answered

    def _taken(self, conversation_id: str, message_id: str) -> bool:
        """Whether this message is answered, or being answered: a resend of it is not answered."""
        return (conversation_id, message_id) in self.state.answering or \
            self.state.store.answered(conversation_id, message_id)

    async def _answer(self, receipt: Receipt, asker: list[ServerConnection], conn: str | None) -> None:
        """typing, then the agent's replies, logged with the receipt marked answered in one
        transaction, then fanned out to every open socket of the conversation; an agent failure
        is answered to `asker` with an error frame."""
        conversation_id, key = receipt.conversation_id, (receipt.conversation_id, receipt.id)
        self.state.answering.add(key)
        try:
            self._push(self._sockets(conversation_id), "chat_status", status="typing")
            try:
                replies, elapsed = await asyncio.to_thread(
                    _cpu_timed, self.state.agent.respond, conversation_id, receipt.text, receipt.v)
            except Exception as exc:
                agent = self.state.agent_name
                self.metrics["agent_errors_total"].labels(agent=agent).inc()
                self.metrics["agent_requests_total"].labels(agent=agent, tenure="none", outcome="error").inc()
                self.state.log.event("agent_error", conn=conn, error=f"{type(exc).__name__}: {exc}")
                self.state.store.answer(receipt, [])  # answered, with an apology: not owed after a restart
                self._push(asker, "error", code="agent_error", message="the agent failed to answer", ref=receipt.id)
                return
            if not isinstance(replies, list) or not all(isinstance(r, dict) for r in replies):
                raise TypeError(f"agent returned {type(replies).__name__}, expected a list of dicts")
            agents, tenure, results, bodies = [], "none", 0, []
            for reply in replies:
                body = dict(reply)
                meta = body.pop("meta", None) or {}
                tenure = str(meta.get("tenure", tenure))
                results += int(meta.get("results", 0))
                body.setdefault("agent", self.state.agent_name)
                agents.append(body["agent"])
                message_id = self.state.new_id()
                bodies.append((message_id, clock.now(), delivery.assistant_message(message_id, body)))
            for logged in self.state.store.answer(receipt, bodies):
                self._send_logged(delivery.fan_out(self._sockets(conversation_id)), logged.frame)
        finally:
            self.state.answering.discard(key)
        agent = agents[0] if agents else self.state.agent_name
        self.metrics["agent_execution_seconds"].labels(agent=agent).observe(elapsed)
        self.metrics["agent_requests_total"].labels(agent=agent, tenure=tenure, outcome="ok").inc()
        self.metrics["agent_results_returned"].labels(agent=agent).observe(results)

    # sending -----------------------------------------------------------
    def _sockets(self, conversation_id: str) -> list[ServerConnection]:
        """The conversation's open sockets that live fan-out serves (not those mid-replay)."""
        return [s.ws for s in self.state.by_conversation.get(conversation_id, ()) if not s.replaying]

    def _push(self, sockets: list[ServerConnection], type_: str, **fields) -> None:
        fields = {k: v for k, v in fields.items() if v is not None}
        sockets = keep_up(self.buffers, sockets, clock.monotonic(), self.cfg.close_timeout)
        if sockets:
            broadcast(sockets, encode(type_, **fields))
            self.metrics["ws_messages_total"].labels(direction="out", type=type_).inc(len(sockets))

    def _send_logged(self, sockets: list[ServerConnection], frame: dict) -> None:
        sockets = keep_up(self.buffers, sockets, clock.monotonic(), self.cfg.close_timeout)
        if sockets:
            broadcast(sockets, json.dumps(frame, separators=(",", ":")))
            self.metrics["ws_messages_total"].labels(direction="out", type="assistant_message").inc(len(sockets))
            self.state.messages_sent += len(sockets)


def _cpu_timed(fn, *args):
    """`fn(*args)` and the CPU seconds its thread spent on it: the agent's execution time is its
    own work, not how long it waited for a core on a busy machine (or under a virtual clock,
    where an agent running on the loop takes no scenario time at all)."""
    started = time.thread_time()
    result = fn(*args)
    return result, time.thread_time() - started


def _peer(connection: ServerConnection) -> str | None:
    try:
        host, port = connection.remote_address[:2]
        return f"{host}:{port}"
    except (TypeError, ValueError):
        return None
