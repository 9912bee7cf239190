"""Every toxic type by name: its attributes (all defaulting to zero, as upstream) and its stage."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from harness.proxy.toxics import Bandwidth, Latency, LimitData, ResetPeer, Slicer, SlowClose, Stage, Timeout
from harness.proxy.ws_toxics import WsClose, WsDropPings, WsHold, check_close


@dataclass(frozen=True)
class ToxicType:
    name: str
    attributes: dict[str, type]  # attribute name -> int or str, all defaulting to zero
    stage: Callable[..., Stage]
    extension: bool = False
    check: Callable[[dict[str, Any]], str | None] | None = None  # a reason to reject attributes

    def zero_attributes(self) -> dict[str, Any]:
        return {k: (0 if t is int else "") for k, t in self.attributes.items()}


TOXIC_TYPES: dict[str, ToxicType] = {
    t.name: t
    for t in (
        ToxicType("noop", {}, Stage),
        ToxicType("latency", {"latency": int, "jitter": int}, Latency),
        ToxicType("bandwidth", {"rate": int}, Bandwidth),
        ToxicType("slow_close", {"delay": int}, SlowClose),
        ToxicType("timeout", {"timeout": int}, Timeout),
        ToxicType("reset_peer", {"timeout": int}, ResetPeer),
        ToxicType("slicer", {"average_size": int, "size_variation": int, "delay": int}, Slicer),
        ToxicType("limit_data", {"bytes": int}, LimitData),
        ToxicType("ws_close", {"code": int, "reason": str, "delay": int}, WsClose, extension=True, check=check_close),
        ToxicType("ws_drop_pings", {}, WsDropPings, extension=True),
        ToxicType("ws_hold", {}, WsHold, extension=True),
    )
}
