"""Structured logs: one JSON object per line. Callers pass fields explicitly, and the
fields listed in REDACTED are replaced, so tokens and secrets never reach a log."""
from __future__ import annotations

import json
import sys
import threading
import time
from typing import TextIO

REDACTED = frozenset({"token", "access_token", "refresh_token", "secret", "admin_key", "password"})


class EventLog:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()

    def event(self, event: str, **fields) -> None:
        record = {"ts": round(time.time(), 6), "event": event}
        record.update({k: ("[redacted]" if k in REDACTED else v) for k, v in fields.items()})
        line = json.dumps(record, default=str, separators=(",", ":"))
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()
