"""The wire vocabulary shared by the server, the clients and the model: close codes and the frame version.

One name per number, so a reader of any engine sees what a close means, and a change of the
protocol is one edit. Codes follow RFC 6455 section 7.4 (1000-1015) and the private range
(4000-4999) for the application's own.
"""
from __future__ import annotations

FRAME_VERSION = "1.0"  # the "v" of every frame of the v1.0 contract
ACK_VERSION = "1.1"  # v1.1 is v1.0 plus the server's `ack` of a stored user message

NORMAL = 1000
GOING_AWAY = 1001
#: a peer that answered no keepalive ping within the heartbeat timeout: gone, as far as the server
#: knows (its fault or its network's, never the server's: not websockets' own 1011)
KEEPALIVE_TIMEOUT = GOING_AWAY
ABNORMAL = 1006  # no close frame was exchanged: never sent on the wire
POLICY_VIOLATION = 1008  # repeated invalid frames
TOO_BIG = 1009
INTERNAL_ERROR = 1011
SERVICE_RESTART = 1012  # a graceful shutdown or restart
TRY_AGAIN_LATER = 1013  # shed by admission
AUTH_FAILED = 4401  # authentication failed or the token expired: refresh, then reconnect
FORBIDDEN = 4403  # forbidden Origin or conversation: do not retry

#: codes a server may send on purpose (the admin drop endpoint accepts these and the private range)
SENDABLE = frozenset({NORMAL, GOING_AWAY, POLICY_VIOLATION, INTERNAL_ERROR, SERVICE_RESTART, TRY_AGAIN_LATER})
