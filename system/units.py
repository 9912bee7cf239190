"""Durations and rates as people write them in scenario files and flags ("15m", "2000/s").

Shared by the server's flags and the harness's scenarios, so that `--token-ttl 15m`
and `token_ttl: 15m` mean the same thing.
"""
from __future__ import annotations

import argparse
import sys
import math
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|min|m|h|d)?\s*$")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|min|m|h|d)")


def parse_duration(value: str | int | float) -> float:
    """Seconds from "250ms", "30s", "15m", "2h", "1d", "1h30m" or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '30s' or '15m', got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"expected a non-negative duration, got {value!r}")
        return float(value)
    text = str(value).strip()
    m = _DURATION.match(text)
    if m:
        return float(m.group(1)) * _UNITS[m.group(2) or "s"]
    parts = _PART.findall(text)
    if parts and "".join(n + u for n, u in parts) == text.replace(" ", ""):
        return sum(float(n) * _UNITS[u] for n, u in parts)
    raise ValueError(f"expected a duration such as '250ms', '30s', '15m', '2h' or '1h30m', got {value!r}")


def parse_rate(value: str | int | float) -> float:
    """Events per second from "2000/s", "120/m", "5/h" or a bare number per second."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(ms|s|min|m|h|d)\s*$", str(value))
    if not m:
        raise ValueError(f"expected a rate such as '2000/s' or '120/m', got {value!r}")
    return float(m.group(1)) / _UNITS[m.group(2)]


def human_number(x: float) -> str:
    """Thousands separated, at most 3 significant decimals, never an exponent."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if float(x).is_integer():
        return f"{int(x):,}"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    digits = max(0, 2 - int(math.floor(math.log10(abs(x))))) if x else 0
    return f"{x:,.{digits}f}".rstrip("0").rstrip(".")


def format_duration(seconds: float) -> str:
    """Short human form for tables: 0.96ms, 42ms, 12.5s, 15m, 2h03m (two significant digits below
    10 ms, so a sub-millisecond latency does not read as 1ms or 0ms)."""
    if seconds != seconds:  # NaN
        return "n/a"
    if seconds < 0.01:
        return f"{seconds * 1000:.2g}ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        m, s = divmod(round(seconds), 60)
        return f"{m}m" if s == 0 else f"{m}m{s:02d}s"
    h, rem = divmod(round(seconds), 3600)
    return f"{h}h" if rem < 60 else f"{h}h{rem // 60:02d}m"


def format_instant(seconds: float) -> str:
    """An instant of a run, to the second: 59s, 12m03s, 6h00m59s (`format_duration` rounds an hour
    to its minute, which would put the second a gate was judged at a minute early)."""
    if seconds != seconds:  # NaN
        return "n/a"
    total = round(seconds)
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h}h{m:02d}m{s:02d}s"
    return f"{m}m{s:02d}s" if m else f"{s}s"


# argparse `type=` converters, so every command reads durations and rates alike and a bad
# value is reported by argparse as "argument --token-ttl: expected a duration such as ...".

def duration_arg(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def optional_duration_arg(text: str) -> float | None:
    """A duration, or 0 / off / none to disable."""
    return None if text.strip().lower() in ("off", "none", "0") else duration_arg(text)


def rate_arg(text: str) -> float:
    """A positive rate per second: '2000', '2000/s' or '120/m'."""
    try:
        rate = parse_rate(float(text) if text.strip().replace(".", "", 1).isdigit() else text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if rate <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive rate, got {text!r}")
    return rate


def optional_rate_arg(text: str) -> float | None:
    """A rate, or off / none to leave it unlimited."""
    return None if text.strip().lower() in ("off", "none") else rate_arg(text)


def positive_int_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def positive_int_or_all_arg(text: str) -> int:
    """A whole number of at least 1, or `all` (no limit: `sys.maxsize`)."""
    return sys.maxsize if text.strip().lower() == "all" else positive_int_arg(text)


def optional_positive_int_arg(text: str) -> int | None:
    """A whole number of at least 1, or off / none for no limit."""
    return None if text.strip().lower() in ("off", "none") else positive_int_arg(text)
