"""The sans-IO parts on their own: the frame tracker and the toxic stages, driven by a fake clock."""
from __future__ import annotations

import random
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.proxy.registry import TOXIC_TYPES
from harness.proxy.toxics import END, Chunk, End, Stage
from harness.proxy.wsframes import FRAMES, OPAQUE, WsStream, close_frame

UPGRADE = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"


def frame(opcode: int, payload: bytes, masked: bool = False) -> bytes:
    n = len(payload)
    head = bytes([0x80 | opcode])
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 65536:
        head += bytes([mask_bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
    if masked:
        key = b"\x01\x02\x03\x04"
        return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + payload


frames_strategy = st.lists(
    st.tuples(st.sampled_from([0x1, 0x2, 0x9, 0xA]), st.sampled_from([0, 1, 125, 126, 300, 70000])), min_size=1, max_size=8
)


@settings(max_examples=60, deadline=None)
@given(frames=frames_strategy, cuts=st.lists(st.integers(min_value=1, max_value=200), max_size=30), masked=st.booleans())
def test_tracker_finds_every_frame_however_the_stream_is_cut(frames, cuts, masked) -> None:
    stream = b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n" if masked else UPGRADE
    wire = [frame(op, bytes([op]) * n, masked) for op, n in frames]
    data = stream + b"".join(wire)
    tracker = WsStream(upstream=masked)
    pieces = []
    pos = 0
    for cut in cuts + [len(data)]:
        pieces += tracker.feed(data[pos : pos + cut])
        pos += cut
        if pos >= len(data):
            break
    assert b"".join(p.data for p in pieces) == data
    assert tracker.state == FRAMES and tracker.at_boundary
    # regroup the pieces by frame: each frame's bytes, opcode and end mark line up
    rebuilt, current = [], b""
    for p in pieces:
        if p.opcode is None:
            continue
        current += p.data
        assert p.opcode == current[0] & 0x0F
        if p.ends_frame:
            rebuilt.append(current)
            current = b""
    assert rebuilt == wire


def _state(tracker: WsStream) -> tuple:
    return tracker.state, tracker._hdr, tracker._opcode, tracker._remaining, tracker.at_boundary


@settings(max_examples=80, deadline=None)
@given(frames=frames_strategy, cuts=st.lists(st.integers(min_value=1, max_value=200), max_size=30), masked=st.booleans())
def test_observe_tracks_exactly_as_feed(frames, cuts, masked) -> None:
    """The forwarding fast path's skip-ahead observe ends every read in the state the cutting path reaches."""
    stream = b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n" if masked else UPGRADE
    data = stream + b"".join(frame(op, bytes([op]) * n, masked) for op, n in frames)
    cutting, observing = WsStream(upstream=masked), WsStream(upstream=masked)
    pos = 0
    for cut in cuts + [len(data)]:
        part = data[pos : pos + cut]
        cutting.feed(part)
        observing.observe(part)
        assert _state(observing) == _state(cutting), (pos, cut)
        pos += cut
        if pos >= len(data):
            break
    assert observing.state == FRAMES and observing.at_boundary


def test_tracker_gives_up_on_what_is_not_websocket() -> None:
    for upstream, data in [(False, b"HTTP/1.1 403 Forbidden\r\n\r\nbody"), (True, b"POST / HTTP/1.1\r\n\r\n"), (False, b"SSH-2.0")]:
        tracker = WsStream(upstream)
        assert b"".join(p.data for p in tracker.feed(data)) == data
        assert tracker.state == OPAQUE and not tracker.at_boundary


def test_close_frame_layout() -> None:
    assert close_frame(4401, "expired", masked=False) == b"\x88\x09" + struct.pack("!H", 4401) + b"expired"
    masked = close_frame(1000, "", masked=True)
    assert masked[:2] == b"\x88\x82" and len(masked) == 8


def stage(kind: str, now: float = 0.0, ws: WsStream | None = None, seed: int = 1, **attrs) -> Stage:
    t = TOXIC_TYPES[kind]
    values = t.zero_attributes() | attrs
    return t.stage(values, random.Random(seed), ws or WsStream(False), now)


def run(s: Stage, items: list[tuple[float, object]], until: float) -> list[tuple[float, object]]:
    """Feed timed items, stepping the clock to each deadline; returns (release time, item)."""
    out: list[tuple[float, object]] = []
    pending = list(items)
    now = 0.0
    while now <= until:
        progressed = True
        while progressed:  # releasing may make room for what is waiting, as in Link.advance
            progressed = False
            while pending and pending[0][0] <= now and s.has_room():
                s.push(pending.pop(0)[1], now)
                progressed = True
            released = s.pull(now)
            out += [(now, item) for item in released]
            progressed = progressed or bool(released)
        nexts = [t for t in (s.deadline(), pending[0][0] if pending else None) if t is not None and t > now]
        if not nexts:
            break
        now = min(nexts)
    return out


def test_latency_is_fifo_and_bounded_by_jitter() -> None:
    s = stage("latency", latency=100, jitter=50, seed=3)
    items = [(i * 0.001, Chunk(b"%d" % i, i * 0.001)) for i in range(200)]
    out = run(s, items, until=5)
    assert [o.data for _, o in out] == [b"%d" % i for i in range(200)]
    times = [t for t, _ in out]
    assert times == sorted(times)
    for i, t in enumerate(times):
        assert t >= i * 0.001 + 0.049
    assert max(t - i * 0.001 for i, t in enumerate(times)) <= 0.150 + 1e-9


def test_bandwidth_schedule_matches_rate() -> None:
    s = stage("bandwidth", rate=1000)  # 1000 KB/s = 1 byte per µs
    out = run(s, [(0.0, Chunk(b"x" * 480_000, 0.0)), (0.0, END)], until=5)
    assert sum(len(o.data) for _, o in out if isinstance(o, Chunk)) == 480_000
    assert max(len(o.data) for _, o in out if isinstance(o, Chunk)) <= 100_000
    assert abs(out[-1][0] - 0.48) < 1e-6 and out[-1][1] is END


@settings(max_examples=40, deadline=None)
@given(size=st.integers(min_value=1, max_value=20_000), avg=st.integers(1, 2048), var=st.integers(0, 4096), seed=st.integers(0, 99))
def test_slicer_reassembles(size, avg, var, seed) -> None:
    data = bytes(i % 251 for i in range(size))
    s = stage("slicer", average_size=avg, size_variation=var, delay=10, seed=seed)
    out = run(s, [(0.0, Chunk(data, 0.0))], until=10)
    assert b"".join(o.data for _, o in out) == data


def test_slicer_counts_like_upstream() -> None:
    s = stage("slicer", average_size=1024, size_variation=512, delay=10)
    out = run(s, [(0.0, Chunk(b"a" * 480_000, 0.0))], until=10)
    assert 240 <= len(out) <= 720
    one = stage("slicer", average_size=1, size_variation=0)
    assert len(run(one, [(0.0, Chunk(b"b" * 24, 0.0))], until=1)) == 24


def test_limit_data_counts_across_updates() -> None:
    s = stage("limit_data", bytes=100)
    s.push(Chunk(b"a" * 90, 0), 0)
    s.reconfigure(s.attrs, 0)
    s.push(Chunk(b"b" * 20, 0), 0)
    out = s.pull(0)
    assert b"".join(o.data for o in out if isinstance(o, Chunk)) == b"a" * 90 + b"b" * 10
    assert isinstance(out[-1], End)


def test_ws_close_waits_for_the_end_of_the_current_frame() -> None:
    ws = WsStream(upstream=False)
    ws.feed(UPGRADE)
    s = stage("ws_close", ws=ws, code=4401, reason="x")
    big = frame(0x2, b"z" * 1000)
    s.push(Chunk(big[:500], 0), 0)
    first = s.pull(0)
    assert [o.data for o in first] == [big[:500]]  # mid-frame: nothing injected yet
    s.push(Chunk(big[500:] + frame(0x1, b"next"), 0), 0)
    out = s.pull(0)
    assert out[0].data == big[500:]
    assert out[1].data == close_frame(4401, "x", masked=False)
    assert out[2] is END and len(out) == 3  # the frame after the cut is not delivered


def test_ws_drop_pings_keeps_data_frames() -> None:
    ws = WsStream(upstream=False)
    ws.feed(UPGRADE)
    s = stage("ws_drop_pings", ws=ws)
    wire = frame(0x9, b"p") + frame(0x1, b"text") + frame(0xA, b"q") + frame(0x2, b"bin")
    for i in range(0, len(wire), 3):
        s.push(Chunk(wire[i : i + 3], 0), 0)
    assert b"".join(o.data for o in s.pull(0)) == frame(0x1, b"text") + frame(0x2, b"bin")
