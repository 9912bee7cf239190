"""Structured logs: one JSON object per line. Callers pass fields explicitly, and the
fields listed in REDACTED are replaced, so tokens and secrets never reach a log.

Libraries (websockets, aiohttp, asyncio) log through the standard `logging` module, with the
request line (`?token=...`) and multi-line tracebacks in their text; `capture_library_logs`
routes every such record through the same JSON-lines stream as one line, with `token=` values
and Authorization-like header values scrubbed, and the traceback reduced to its last error."""
from __future__ import annotations

import json
import logging
import re
import sys
import threading
from typing import TextIO

from system import clock

REDACTED = frozenset({"token", "access_token", "refresh_token", "secret", "admin_key", "password"})
_SECRET_TEXT = re.compile(
    r"((?:access_|refresh_)?token=|(?:authorization|x-admin-key|cookie|proxy-authorization)\s*[:=]\s*)"
    r"[^\s&\"',;]+", re.IGNORECASE)


def scrub(text: str) -> str:
    """`text` with every token= value and Authorization-like header value replaced."""
    return _SECRET_TEXT.sub(r"\1[redacted]", text)


class EventLog:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()

    def event(self, event: str, **fields) -> None:
        record = {"ts": round(clock.now(), 6), "event": event}
        record.update({k: ("[redacted]" if k in REDACTED else v) for k, v in fields.items()})
        line = json.dumps(record, default=str, separators=(",", ":"))
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()


class _LibraryHandler(logging.Handler):
    """A library's log record as one scrubbed JSON line on the server's event log."""

    def __init__(self, log: EventLog) -> None:
        super().__init__(logging.WARNING)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = {"logger": record.name, "level": record.levelname, "message": scrub(record.getMessage())}
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                fields["error"] = scrub(f"{type(exc).__name__}: {exc}".replace("\n", " "))
            self.log.event("library_log", **fields)
        except Exception:  # a log call must never take the server down
            self.handleError(record)


def capture_library_logs(log: EventLog) -> logging.Handler:
    """Send every warning or worse from any logger (websockets, aiohttp and asyncio propagate to the
    root) to `log`, so nothing reaches Python's last-resort stderr text; returns the handler."""
    handler = _LibraryHandler(log)
    logging.getLogger().addHandler(handler)
    return handler
