"""Request bodies decoded the way Go's encoding/json decodes them for Toxiproxy.

Clients written against upstream rely on its leniency (keys matched without
regard to case, unknown keys and trailing bytes ignored, `null` meaning "leave
as is") and on its strictness (integers must be integers, strings strings), so
both are reproduced here; errors become 400 "bad request body: ...".
"""
from __future__ import annotations

import json
import struct
from typing import Any

from harness.proxy.errors import BAD_REQUEST_BODY, ApiError

_GO_TYPES = {str: "string", bool: "bool", int: "int64", float: "float32"}


def decode(body: bytes) -> Any:
    """The first JSON value of the body; an empty body is Go's `EOF`."""
    text = body.decode("utf-8", errors="replace").lstrip()
    if not text:
        raise BAD_REQUEST_BODY.with_detail("EOF")
    try:
        value, _ = json.JSONDecoder(parse_constant=_reject_constant).raw_decode(text)
    except json.JSONDecodeError as exc:
        raise BAD_REQUEST_BODY.with_detail(f"invalid character: {exc.msg} at offset {exc.pos}") from None
    except RecursionError:  # Go's decoder stops at 10000 levels with this message
        raise BAD_REQUEST_BODY.with_detail("exceeded max depth") from None
    return value


def _reject_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (Python's decoder accepts them; Go's does not)."""
    raise BAD_REQUEST_BODY.with_detail(f"invalid character in numeric literal: {name}")


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else "null"


def mismatch(value: Any, field: str, go_type: str) -> ApiError:
    return BAD_REQUEST_BODY.with_detail(
        f"json: cannot unmarshal {_json_kind(value)} into Go struct field {field} of type {go_type}"
    )


def expect_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BAD_REQUEST_BODY.with_detail(f"json: cannot unmarshal {_json_kind(value)} into Go value of type {what}")
    return value


def fields(obj: dict[str, Any], spec: dict[str, type], where: str) -> dict[str, Any]:
    """Pick `spec`'s fields from a JSON object; absent or null fields are left out."""
    lowered: dict[str, str] = {}
    for key in obj:
        lowered.setdefault(key.lower(), key)
    out: dict[str, Any] = {}
    for name, kind in spec.items():
        key = name if name in obj else lowered.get(name.lower())
        if key is None or obj[key] is None:
            continue
        value = obj[key]
        if kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif kind is dict:
            ok = isinstance(value, dict)
        else:
            ok = isinstance(value, kind)
        if not ok:
            raise mismatch(value, f"{where}.{name}", _GO_TYPES.get(kind, "object"))
        out[name] = float(value) if kind is float else value
    return out


def float32(x: float) -> float | int:
    """The shortest decimal that reads back as the same float32 (0.2, not 0.2000000029...)."""
    f32 = struct.unpack("f", struct.pack("f", x))[0]
    for digits in range(1, 10):
        text = f"{f32:.{digits}g}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == f32:
            value = float(text)
            return int(value) if value.is_integer() and abs(value) < 2**53 else value
    return f32
