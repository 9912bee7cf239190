"""The send-buffer rules of the server core (`system.server.backpressure`), driven by events alone:
bytes queued, bytes drained or a measured buffer size, and the clock. The real-socket tests of the
same rules (a client that stops reading, a resume larger than a page) are in test_bounds.py and
test_hardening.py."""
from __future__ import annotations

from system import wire
from system.server.backpressure import NOT_READING, TOO_FAR_BEHIND, SendBuffers, SendLimits

LIMITS = SendLimits(max_backlog=1000, stall_timeout=30.0, replay_page=3)


def test_a_client_too_far_behind_is_shed_with_1013_before_the_next_frame() -> None:
    buffers: SendBuffers[str] = SendBuffers(LIMITS)
    buffers.queued("a", 1000, now=0.0)
    assert buffers.before_send("a") is None  # at the bound, not above it
    buffers.queued("a", 1, now=1.0)
    outcome = buffers.before_send("a")
    assert outcome is TOO_FAR_BEHIND and outcome.kind == "close" and outcome.code == wire.TRY_AGAIN_LATER
    buffers.drained("a", 500, now=2.0)
    assert buffers.before_send("a") is None and buffers.backlog("a") == 501
    assert buffers.before_send("never-seen") is None


def test_a_buffer_that_neither_empties_nor_shrinks_for_the_timeout_is_shed_as_not_reading() -> None:
    buffers: SendBuffers[str] = SendBuffers(LIMITS)
    buffers.queued("stuck", 10, now=100.0)
    buffers.queued("reader", 10, now=100.0)
    buffers.queued("stuck", 10, now=120.0)  # growing is no progress
    buffers.drained("reader", 5, now=120.0)  # shrinking is
    assert buffers.tick(129.9) == []
    assert buffers.tick(130.0) == [("stuck", NOT_READING)]
    assert NOT_READING.code == wire.TRY_AGAIN_LATER and NOT_READING.reason == "not reading"
    assert buffers.backlog("stuck") == 0  # forgotten once decided: shed once
    assert buffers.tick(150.0) == [("reader", NOT_READING)]


def test_an_empty_buffer_never_stalls_and_queueing_onto_it_restarts_the_clock() -> None:
    buffers: SendBuffers[str] = SendBuffers(LIMITS)
    buffers.queued("a", 10, now=0.0)
    buffers.drained("a", 10, now=1.0)
    assert buffers.tick(1000.0) == []  # empty: nothing is held for it
    buffers.queued("a", 10, now=1000.0)
    assert buffers.tick(1029.0) == [] and buffers.tick(1030.0) == [("a", NOT_READING)]


def test_measured_sizes_drive_the_same_rule_as_counted_bytes() -> None:
    """A transport reports its buffer's size, not the bytes that came and went: the same decisions."""
    buffers: SendBuffers[str] = SendBuffers(LIMITS)
    buffers.measured("a", 400, now=0.0)
    buffers.measured("a", 400, now=10.0)
    buffers.measured("a", 300, now=20.0)  # shrank: progress at 20
    buffers.measured("a", 2000, now=25.0)
    assert buffers.before_send("a") is TOO_FAR_BEHIND
    assert buffers.tick(49.0) == [] and buffers.tick(50.0) == [("a", NOT_READING)]


def test_a_tick_forgets_the_connections_no_longer_live() -> None:
    buffers: SendBuffers[str] = SendBuffers(LIMITS)
    buffers.queued("gone", 10, now=0.0)
    buffers.queued("open", 10, now=0.0)
    assert buffers.tick(40.0, live=["open"]) == [("open", NOT_READING)]
    buffers.queued("closed", 10, now=0.0)
    buffers.closed("closed")
    assert buffers.tick(100.0) == []


def test_a_replay_goes_page_by_page_and_stops_at_a_page_not_drained_in_time() -> None:
    pages = SendBuffers(LIMITS).replay(last_seq=4)
    assert (pages.cursor, pages.size, pages.drain_timeout) == (4, 3, 30.0)
    assert pages.page_done(7, 3, drained=True) is True
    assert (pages.cursor, pages.replayed, pages.complete) == (7, 3, True)
    assert pages.page_done(10, 3, drained=False) is False
    assert (pages.cursor, pages.replayed, pages.complete) == (10, 6, False)
