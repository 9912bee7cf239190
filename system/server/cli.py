"""`stormbench serve`: flags -> ServerConfig, then run until SIGTERM.

Prints exactly one JSON line on stdout once both listeners are up (the harness waits
for it): {"event": "ready", "ws_url", "http_url", "pid", "db", "legacy_traits"[, "admin_key"]}.
Logs go to --log-file or stderr, never stdout.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
from pathlib import Path

from system.server.config import LEGACY_TRAITS, ServerConfig
from system.server.lifecycle import EXPIRY_GRACE_S
from system.units import (duration_arg, optional_duration_arg, optional_positive_int_arg, optional_rate_arg,
                          positive_int_arg, rate_arg)

HELP = "run the chat server (WebSocket + HTTP auth/metrics/admin)"


def configure(parser: argparse.ArgumentParser) -> None:
    net = parser.add_argument_group("listeners")
    net.add_argument("--host", default="127.0.0.1", help="address both listeners bind (default 127.0.0.1)")
    net.add_argument("--port", type=int, default=0, help="WebSocket port (0: any free port, reported in the ready line)")
    net.add_argument("--http-port", type=int, default=0, help="HTTP port for auth/health/metrics/admin (0: any free port)")

    beh = parser.add_argument_group("behaviour")
    beh.add_argument("--legacy", action="store_true", help="turn on every legacy trait (the seed system before its fixes)")
    beh.add_argument("--legacy-trait", action="append", default=[], choices=sorted(LEGACY_TRAITS), metavar="NAME",
                     help="turn on one legacy trait (repeatable): " +
                          "; ".join(f"{k}: {v}" for k, v in LEGACY_TRAITS.items()))
    beh.add_argument("--allowed-origin", action="append", default=[], metavar="ORIGIN",
                     help="allow this Origin (repeatable); when given, any other Origin is refused with 4403")
    beh.add_argument("--max-connections", type=positive_int_arg, default=None,
                     help="admission: shed connections past this many with 1013 (default: from the open-files "
                          "limit, which the server raises to its hard limit, less headroom)")
    beh.add_argument("--handshake-rate", type=rate_arg, default=None,
                     help="admission: accepted handshakes per second, e.g. 2000 or 2000/s (default unlimited)")
    beh.add_argument("--handshake-burst", type=positive_int_arg, default=None,
                     help="admission: token-bucket depth for --handshake-rate (default one second's worth)")
    beh.add_argument("--max-frame-bytes", type=positive_int_arg, default=64 * 1024,
                     help="largest client frame; bigger ones close the connection with 1009 (default 65536)")
    beh.add_argument("--max-invalid-frames", type=positive_int_arg, default=3,
                     help="invalid frames a connection may send before it is closed with 1008 (default 3)")

    flow = parser.add_argument_group("per-connection bounds (what one client can make the server hold)")
    flow.add_argument("--max-send-buffer", type=positive_int_arg, default=1 << 20,
                      help="bytes queued for one client before it is shed with 1013 (default 1048576)")
    flow.add_argument("--send-timeout", type=duration_arg, default=30.0,
                      help="shed a client (1013) whose send backlog has not shrunk for this long (default 30s)")
    flow.add_argument("--replay-page", type=positive_int_arg, default=100,
                      help="messages per page of a resume replay; each page drains before the next (default 100)")
    flow.add_argument("--resume-rate", type=rate_arg, default=1.0,
                      help="resume frames per second per connection; beyond: error rate_limited (default 1/s)")
    flow.add_argument("--resume-burst", type=positive_int_arg, default=5,
                      help="resume frames a connection may send at once (default 5)")

    auth = parser.add_argument_group("auth and time")
    auth.add_argument("--token-ttl", type=duration_arg, default=900.0, help="access token lifetime, e.g. 15m (default 15m)")
    auth.add_argument("--refresh-ttl", type=duration_arg, default=7 * 86400.0, help="refresh token lifetime (default 7d)")
    auth.add_argument("--heartbeat-interval", type=optional_duration_arg, default=20.0,
                      help="WebSocket ping interval, e.g. 30s; 'off' disables (default 20s)")
    auth.add_argument("--heartbeat-timeout", type=optional_duration_arg, default=20.0,
                      help="close a connection whose pong is this late, e.g. 20s; 'off' disables (default 20s)")
    auth.add_argument("--live-expiry", action="store_true",
                      help="enforce token expiry on open connections: an auth_refresh frame must arrive "
                           "within --expiry-grace of expiry, else close 4401")
    auth.add_argument("--expiry-grace", type=duration_arg, default=EXPIRY_GRACE_S, help=f"grace after expiry for --live-expiry (default {EXPIRY_GRACE_S:g}s)")
    auth.add_argument("--auth-user-rate", type=optional_rate_arg, default=5.0,
                      help="token requests (/auth/token, /auth/refresh) per second per user; beyond: 429 "
                           "with Retry-After; 'off' for none (default 5/s)")
    auth.add_argument("--auth-user-burst", type=positive_int_arg, default=20,
                      help="token requests one user may make at once (default 20)")
    auth.add_argument("--auth-address-rate", type=optional_rate_arg, default=100.0,
                      help="token requests per second per client address; 'off' for none (default 100/s; "
                           "a fleet emulated from one address turns it off)")
    auth.add_argument("--auth-address-burst", type=positive_int_arg, default=1000,
                      help="token requests one address may make at once (default 1000)")
    auth.add_argument("--secret", default=None,
                      help="JWT signing secret (default: generated once and kept in --db, so a restart keeps tokens valid)")
    auth.add_argument("--admin-key", default=os.environ.get("STORMBENCH_ADMIN_KEY"),
                      help="X-Admin-Key for /admin/* (default: $STORMBENCH_ADMIN_KEY, else generated and "
                           "printed in the ready line)")

    store = parser.add_argument_group("storage, agent and logs")
    store.add_argument("--db", type=Path, default=None,
                       help="SQLite file for messages, refresh tokens and the secret (default: a new temp file)")
    store.add_argument("--agent", default="supervisor",
                       help="who answers user messages: supervisor (the real-estate supervisor), echo, "
                            "or module:Factory (default supervisor)")
    store.add_argument("--answer-unanswered", type=int, default=100, metavar="N",
                       help="at start, answer up to N stored user messages that were acked and never answered "
                            "(the server died in between), oldest first; 0 for none (default 100)")
    store.add_argument("--history-limit", type=optional_positive_int_arg, default=10_000, metavar="N",
                       help="messages kept per conversation (older ones, and their answered receipts, are "
                            "pruned; a resume from before them replays what is kept); 'off' for all (default 10000)")
    store.add_argument("--conversations-per-user", type=optional_positive_int_arg, default=1_000, metavar="N",
                       help="conversations one user may open; beyond: error conversation_limit and close 4403; "
                            "'off' for no limit (default 1000)")
    store.add_argument("--agent-db", "--listings-db", type=Path, default=None,
                       help="listings database for --agent supervisor (`stormbench seed-db`; default: a small "
                            "5,000-listing database built once in ~/.cache/stormbench)")
    store.add_argument("--log-file", type=Path, default=None, help="structured JSON-lines log (default stderr)")


def config_from_args(args: argparse.Namespace) -> tuple[ServerConfig, bool]:
    """The config, and whether the admin key was generated (and so must be printed)."""
    traits = frozenset(LEGACY_TRAITS) if args.legacy else frozenset(args.legacy_trait)
    generated = not args.admin_key
    db = args.db or Path(tempfile.mkdtemp(prefix="stormbench-server-")) / "server.db"
    config = ServerConfig(
        db_path=db, admin_key=args.admin_key or secrets.token_urlsafe(24), host=args.host, port=args.port,
        http_port=args.http_port, legacy_traits=traits, secret=args.secret, token_ttl=args.token_ttl,
        refresh_ttl=args.refresh_ttl, heartbeat_interval=args.heartbeat_interval,
        heartbeat_timeout=args.heartbeat_timeout, live_expiry=args.live_expiry, expiry_grace=args.expiry_grace,
        max_connections=args.max_connections, handshake_rate=args.handshake_rate,
        handshake_burst=args.handshake_burst, allowed_origins=tuple(args.allowed_origin), agent=args.agent,
        agent_db=args.agent_db, max_frame_bytes=args.max_frame_bytes, max_invalid_frames=args.max_invalid_frames,
        max_send_buffer=args.max_send_buffer, send_timeout=args.send_timeout, replay_page=args.replay_page,
        resume_rate=args.resume_rate, resume_burst=args.resume_burst, auth_user_rate=args.auth_user_rate,
        auth_user_burst=args.auth_user_burst, auth_address_rate=args.auth_address_rate,
        auth_address_burst=args.auth_address_burst, answer_unanswered=args.answer_unanswered,
        history_limit=args.history_limit, conversations_per_user=args.conversations_per_user)
    return config, generated


def run(args: argparse.Namespace) -> int:
    from system.errors import UsageError
    from system.server.app import ChatServer, serve_until_signalled
    from system.server.logs import EventLog, capture_library_logs

    try:
        config, generated_key = config_from_args(args)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    stream = open(args.log_file, "a", buffering=1) if args.log_file else sys.stderr
    try:
        try:
            log = EventLog(stream)
            capture_library_logs(log)
            server = ChatServer(config, log)
        except (ImportError, ValueError, TypeError) as exc:
            raise UsageError(f"--agent {config.agent}: {exc}") from None

        def announce(s: ChatServer) -> None:
            ready = {"event": "ready", "ws_url": s.ws_url, "http_url": s.http_url, "pid": os.getpid(),
                     "db": str(config.db_path), "legacy_traits": sorted(config.legacy_traits)}
            if generated_key:
                ready["admin_key"] = config.admin_key
            print(json.dumps(ready), flush=True)

        try:
            asyncio.run(serve_until_signalled(server, announce))
        except OSError as exc:
            raise UsageError(f"cannot listen on {config.host}: {exc}") from None
    finally:
        if stream is not sys.stderr:
            stream.close()
    return 0
