"""Agent backends for tests (loadable by `--agent tests.server.backends:NAME` too)."""
from __future__ import annotations

import os
import threading


class Malformed:
    """Returns something the server cannot send: an unexpected error in the handler."""

    name = "malformed"

    def respond(self, conversation_id, text, request_version):
        return "not a list"


class Failing:
    name = "failing"

    def respond(self, conversation_id, text, request_version):
        raise RuntimeError("listings database is gone")


class TwoReplies:
    """Like the real-estate agent: two frames, with metadata for the metrics."""

    name = "real_estate"

    def __init__(self):
        self.calls: list[tuple[str, str, str]] = []

    def respond(self, conversation_id, text, request_version):
        self.calls.append((conversation_id, text, request_version))
        return [
            {"agent": "real_estate", "text": f"searching: {text}", "meta": {"tenure": "long_term", "results": 0}},
            {"agent": "real_estate", "text": "found 3", "actions": [{"type": "show_listings", "listings": []}],
             "meta": {"tenure": "long_term", "results": 3}},
        ]


class Gate:
    """Blocks in respond() until released: proves the agent runs off the event loop."""

    name = "gate"

    def __init__(self):
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = threading.Semaphore(0)  # one release per call: await each with acquire()

    def respond(self, conversation_id, text, request_version):
        self.calls.release()
        self.entered.set()
        self.release.wait(10)
        return [{"agent": "gate", "text": text}]


class Stall:
    """Says that it was asked (a line into the FIFO named by $STORMBENCH_TEST_AGENT_FIFO), then
    never answers: a test kills the server while a stored, acked message waits for its answer."""

    name = "stall"

    def respond(self, conversation_id, text, request_version):
        with open(os.environ["STORMBENCH_TEST_AGENT_FIFO"], "w") as fifo:
            fifo.write(f"{conversation_id}\n")
        threading.Event().wait()
