"""The metric names a gate may use, and the server metrics they stand for.

Gate files speak the run record's vocabulary (`connection_duration`, `closes{code="4401"}`); the
server exports `ws_connection_duration_seconds`, `ws_closes_total{code}`. Both the run-record
evaluator (`formats.gates.evaluate`, judging `scrapes.jsonl`) and the Prometheus evaluator
(`harness.prom`) read these aliases, so one gate file means the same metric everywhere.
"""
from __future__ import annotations

# run-record metric -> (exported metric, labels it implies)
ALIASES: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "connection_duration": ("ws_connection_duration_seconds", ()),
    "closes": ("ws_closes_total", ()),
    "active_connections": ("ws_connections_active", ()),
    "connections_opened": ("ws_connections_opened_total", ()),
    "handshake_rejections": ("ws_handshake_rejections_total", ()),
    "http_403": ("ws_handshake_rejections_total", (("status", "403"),)),
    "messages": ("ws_messages_total", ()),
    "tokens_issued": ("auth_tokens_issued_total", ()),
    "auth_refresh": ("auth_refresh_total", ()),
    "agent_requests": ("agent_requests_total", ()),
    "agent_execution": ("agent_execution_seconds", ()),
    "agent_results": ("agent_results_returned", ()),
    "agent_errors": ("agent_errors_total", ()),
    "memory": ("process_resident_memory_bytes", ()),
}
# Run-record metrics only the clients see (README "Client event records"): no server metric holds them.
CLIENT_SIDE = frozenset({
    "attempts", "reconnects", "manual_refreshes", "displayed", "duplicates", "duplicates_displayed",
    "lost_messages", "reordered_messages", "unexpected_messages", "messages_sent", "messages_displayed",
    "lost_user_messages", "duplicated_user_messages", "user_messages_sent",
})
