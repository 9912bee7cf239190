"""The one place the system reads time: the running event loop's clock.

Why the loop and not `time.time()`: everything the server times (token issue and
expiry, the live-expiry watch, connection durations, admission, the delivery log's
`t`, log timestamps) happens on its event loop, whose timers already follow
`loop.time()`. Reading the same clock keeps the two consistent under any loop: on an
ordinary loop `loop.time()` is `time.monotonic()`, so `now()` is unix time; on a loop
whose clock is virtual (the bench's emulation jumps it over idle time) the server's
tokens, durations and records follow that clock without the server knowing.

Outside a running loop (start-up, a worker thread) the process clocks are used.
"""
from __future__ import annotations

import asyncio
import time

#: unix time minus monotonic time, fixed once per process, so `now()` never jumps with NTP
_EPOCH = time.time() - time.monotonic()


def monotonic() -> float:
    """Seconds on the running loop's clock (any origin): for durations and rate limits."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


def now() -> float:
    """Unix seconds on the running loop's clock: for token issue/expiry and records."""
    return _EPOCH + monotonic()
