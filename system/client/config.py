"""What a client is: which of the ten fixes it has, and its time constants.

Profiles are configurations of one implementation, never forks: `legacy` is every
fix off, `fixed` every fix on, and any mix in between is a valid client, so a run
can measure what one fix buys on its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable

FIX_NAMES: tuple[str, ...] = (
    "stable_socket",             # keep the socket across token changes (legacy: a new socket per token)
    "refresh_before_reconnect",  # a fresh token before every reconnect, proactive refresh at a jittered
                                 # half-life retried with backoff (legacy: stale token -> 403 loop;
                                 # one refresh `refresh_lead` before expiry, a failure not retried)
    "exp_backoff",               # capped exponential backoff, retried indefinitely (legacy: fixed delay, then give up)
    "jitter",                    # randomise every delay (legacy: none, so fleets retry in lock-step)
    "single_writer",             # at most one live socket (legacy: the old socket stays open)
    "dedup_resume",              # drop repeated message ids; `resume` from the last seq on every open
    "close_code_hygiene",        # react per close code (legacy: every close is the same)
    "network_awareness",         # no attempts while offline, prompt reconnect when back online
    "listener_cleanup",          # drop per-connection handlers on close (legacy: they pile up)
    "client_metrics",            # the client counts its own events (policy.metrics)
)
PROFILES = ("legacy", "fixed")
JITTER_MODES = ("full", "equal", "decorrelated")


@dataclass(frozen=True)
class Fixes:
    """Ten named switches; the defaults are the fixed client."""

    stable_socket: bool = True
    refresh_before_reconnect: bool = True
    exp_backoff: bool = True
    jitter: bool = True
    single_writer: bool = True
    dedup_resume: bool = True
    close_code_hygiene: bool = True
    network_awareness: bool = True
    listener_cleanup: bool = True
    client_metrics: bool = True

    @classmethod
    def profile(cls, name: str) -> "Fixes":
        if name not in PROFILES:
            raise ValueError(f"unknown client profile {name!r}: expected one of {', '.join(PROFILES)}")
        on = name == "fixed"
        return cls(**{n: on for n in FIX_NAMES})

    def with_changes(self, enable: Iterable[str] = (), disable: Iterable[str] = ()) -> "Fixes":
        enable, disable = list(enable), list(disable)
        for name in enable + disable:
            if name not in FIX_NAMES:
                raise ValueError(f"unknown fix {name!r}: expected one of {', '.join(FIX_NAMES)}")
        both = set(enable) & set(disable)
        if both:
            raise ValueError(f"fix {sorted(both)[0]!r} is both enabled and disabled")
        return replace(self, **{n: True for n in enable}, **{n: False for n in disable})

    def enabled(self) -> list[str]:
        return [n for n in FIX_NAMES if getattr(self, n)]

    def label(self) -> str:
        """`fixed`, `legacy`, or the nearer profile with its differences, e.g. `fixed-jitter`."""
        on = self.enabled()
        if len(on) == len(FIX_NAMES):
            return "fixed"
        if not on:
            return "legacy"
        if len(on) * 2 >= len(FIX_NAMES):
            return "fixed" + "".join(f"-{n}" for n in FIX_NAMES if n not in on)
        return "legacy" + "".join(f"+{n}" for n in on)


_DURATIONS = ("base_delay", "max_delay", "legacy_delay", "restart_window", "overload_base",
              "token_ttl", "refresh_lead", "stable_after", "think_time", "reorder_hold")


@dataclass(frozen=True)
class ClientConfig:
    """Time constants in seconds of the driver's clock (see `scaled` for compressed runs).

    `think_time` is how long a user takes to hard-refresh after a give-up; the policy
    then starts a new session by itself, so every driver restarts sessions the same way.
    `reorder_hold` (with `dedup_resume`) bounds how long a message that arrived ahead of a
    gap waits for the `resume` replay to fill it; the gap is normally filled one round trip
    after the socket opens, so the bound only bites when the replay never comes.

    Proactive refresh: with `refresh_before_reconnect` the client refreshes a token when
    `refresh_at` of its lifetime has passed, drawn up to `refresh_jitter` of the lifetime earlier
    (with the `jitter` fix), both fractions, not durations; without it, `refresh_lead` seconds before
    expiry (never before half-life), as the seed's browser client did. See `ClientPolicy._refresh_time`.
    """

    fixes: Fixes = field(default_factory=Fixes)
    jitter: str = "full"
    base_delay: float = 1.0
    max_delay: float = 30.0
    legacy_delay: float = 1.0
    max_retries: int = 5
    restart_window: float = 10.0
    overload_base: float = 5.0
    token_ttl: float = 900.0
    refresh_lead: float = 60.0
    stable_after: float = 30.0
    think_time: float = 10.0
    reorder_hold: float = 30.0
    refresh_at: float = 0.5
    refresh_jitter: float = 0.1

    def __post_init__(self) -> None:
        if not isinstance(self.fixes, Fixes):
            raise ValueError(f"ClientConfig.fixes: expected a Fixes, got {type(self.fixes).__name__}")
        if self.jitter not in JITTER_MODES:
            raise ValueError(f"ClientConfig.jitter: expected one of {', '.join(JITTER_MODES)}, got {self.jitter!r}")
        for name in _DURATIONS:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
                raise ValueError(f"ClientConfig.{name}: expected a non-negative number of seconds, got {value!r}")
        if self.max_delay < self.base_delay:
            raise ValueError(f"ClientConfig.max_delay ({self.max_delay}) must be >= base_delay ({self.base_delay})")
        if self.refresh_lead >= self.token_ttl > 0:
            raise ValueError(f"ClientConfig.refresh_lead ({self.refresh_lead}) must be < token_ttl ({self.token_ttl})")
        for name in ("refresh_at", "refresh_jitter"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
                raise ValueError(f"ClientConfig.{name}: expected a fraction of the token's lifetime in [0, 1), "
                                 f"got {value!r}")
        if not self.refresh_jitter < self.refresh_at:
            raise ValueError(f"ClientConfig.refresh_jitter ({self.refresh_jitter}) must be < refresh_at "
                             f"({self.refresh_at}): a refresh is never due at once")
        if not isinstance(self.max_retries, int) or self.max_retries < 1:
            raise ValueError(f"ClientConfig.max_retries: expected an integer >= 1, got {self.max_retries!r}")

    @classmethod
    def for_profile(cls, profile: str, **overrides) -> "ClientConfig":
        return cls(fixes=Fixes.profile(profile), **overrides)

    def scaled(self, factor: float) -> "ClientConfig":
        """The same client with every duration divided by `factor` (time compression)."""
        if not factor > 0:
            raise ValueError(f"time scale factor must be > 0, got {factor!r}")
        return replace(self, **{n: getattr(self, n) / factor for n in _DURATIONS})

    def delay_bound(self) -> float:
        """No reconnect delay this client schedules is longer than this."""
        regular = self.max_delay if self.fixes.exp_backoff else self.legacy_delay
        if self.fixes.close_code_hygiene:  # 1012 waits inside restart_window, 1013 adds overload_base
            return max(regular + self.overload_base, self.restart_window)
        return regular

