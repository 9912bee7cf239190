"""Client frame validation and server frame construction for the v1.0 frame contract."""
from __future__ import annotations

import json

from jsonschema import ValidationError
from jsonschema.exceptions import best_match

from system import wire
from system.contracts import validator

VERSION = wire.FRAME_VERSION
ACK_VERSION = wire.ACK_VERSION  # v1.1 is v1.0 plus the server's `ack` of a stored user message (ws/1.1/ack.json)
CLIENT_TYPES = ("user_message", "resume", "auth_refresh", "ping")


class FrameError(Exception):
    """A client frame the server cannot accept; `code` goes into the error frame."""

    def __init__(self, code: str, message: str, ref: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.ref = ref


def parse_client_frame(raw: str | bytes) -> dict:
    """The frame as a dict, or FrameError naming the field and what was expected."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raise FrameError("invalid_frame", "binary frames are not accepted: send a JSON text frame")
    try:
        frame = json.loads(raw)
    except ValueError as exc:
        raise FrameError("invalid_json", f"frame is not JSON: {exc}") from None
    except RecursionError:
        raise FrameError("invalid_json", "frame nests too deeply") from None
    _check(frame, "envelope")
    if frame["type"] not in CLIENT_TYPES:
        raise FrameError("unknown_type",
                         f"field 'type': expected one of {', '.join(CLIENT_TYPES)}, got {frame['type']!r}")
    _check(frame, frame["type"])
    return frame


def _check(frame: object, schema: str) -> None:
    error: ValidationError | None = best_match(validator("ws", VERSION, schema).iter_errors(frame))
    if error is None:
        return
    where = "/".join(str(p) for p in error.absolute_path) or "(frame)"
    ref = frame.get("id") if isinstance(frame, dict) and isinstance(frame.get("id"), str) else None
    raise FrameError("invalid_frame", f"field '{where}': {error.message}", ref)


def encode(type_: str, **fields) -> str:
    return json.dumps({"v": VERSION, "type": type_, **fields}, separators=(",", ":"))
