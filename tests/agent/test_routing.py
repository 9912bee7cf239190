"""Routing accuracy on the hand-written labelled set, with floors the router must keep."""
from __future__ import annotations

import collections
import json
from pathlib import Path

from system.agent.registry import AgentSpec, Reading, Reply, discover
from system.agent.routing import THRESHOLD, choose
from system.agent.supervisor import Supervisor

LABELLED = Path(__file__).with_name("routing_labelled.jsonl")
ACCURACY_FLOOR = 0.95  # measured 0.973 before tuning on this set, 0.982 (219/223) after
RECALL_FLOOR = 0.95    # per class: neither side may be sacrificed for the other
# Written after the router was tuned and never tuned on: the honest estimate of how it generalises.
HELDOUT = Path(__file__).with_name("routing_heldout.jsonl")
HELDOUT_FLOOR = 0.80   # measured 0.85 (34/40)


def _rows(path: Path = LABELLED) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        row = json.loads(line)
        assert row["agent"] in ("real_estate", "general"), f"{path.name}:{n}: agent {row['agent']!r}"
        rows.append(row)
    return rows


def test_the_labelled_set_is_big_varied_and_unique():
    rows = _rows()
    texts = [r["text"] for r in rows]
    assert len(rows) >= 200 and len(set(texts)) == len(texts)
    counts = collections.Counter(r["agent"] for r in rows)
    assert min(counts.values()) >= 80


def test_routing_accuracy_on_the_labelled_set(supervisor):
    rows = _rows()
    hits: collections.Counter[str] = collections.Counter()
    misses, routed = [], collections.Counter()
    for n, row in enumerate(rows):  # a fresh conversation each: no follow-up context helps
        got = supervisor.respond(f"routing-{n}", row["text"], "1.1")[0]["agent"]
        routed[got] += 1
        if got == row["agent"]:
            hits[row["agent"]] += 1
        else:
            misses.append(f"{row['agent']} -> {got}: {row['text']}")
    totals = collections.Counter(r["agent"] for r in rows)
    accuracy = sum(hits.values()) / len(rows)
    print(f"\nrouting accuracy {accuracy:.3f} ({sum(hits.values())}/{len(rows)}); misses:\n  " + "\n  ".join(misses))
    assert accuracy >= ACCURACY_FLOOR, misses
    for agent, total in totals.items():
        assert hits[agent] / total >= RECALL_FLOOR, (agent, misses)
    assert supervisor.routed == routed  # every decision is counted


def test_routing_accuracy_on_the_held_out_set(supervisor):
    rows = _rows(HELDOUT)
    assert len(rows) >= 40 and not {r["text"] for r in rows} & {r["text"] for r in _rows()}
    got = [supervisor.respond(f"heldout-{n}", r["text"], "1.1")[0]["agent"] for n, r in enumerate(rows)]
    accuracy = sum(g == r["agent"] for g, r in zip(got, rows)) / len(rows)
    print(f"\nheld-out routing accuracy {accuracy:.3f}")
    assert accuracy >= HELDOUT_FLOOR


def test_follow_ups_stay_with_the_agent_that_is_mid_search(supervisor):
    assert supervisor.respond("c", "cheaper", "1.1")[0]["agent"] == "general"  # nothing to refine yet
    supervisor.respond("c", "2 bed flat in Porto", "1.1")
    assert supervisor.respond("c", "long", "1.1")[0]["agent"] == "real_estate"
    assert supervisor.respond("c", "cheaper", "1.1")[0]["agent"] == "real_estate"
    assert supervisor.respond("c", "thanks!", "1.1")[0]["agent"] == "general"


def test_choose_takes_the_best_score_above_the_threshold_else_the_fallback():
    r = lambda s: Reading(s, None, f"score {s}")  # noqa: E731
    assert choose({"a": r(0.7), "b": r(0.9), "general": r(0.0)}, "general").agent == "b"
    assert choose({"a": r(0.9), "b": r(0.9), "general": r(0.0)}, "general").agent == "a"  # ties: routing order
    low = choose({"a": r(THRESHOLD - 0.01), "general": r(0.0)}, "general")
    assert (low.agent, low.reason) == ("general", "below threshold")
    assert choose({"general": r(0.0)}, "general").agent == "general"


def test_every_routing_decision_is_logged(supervisor, caplog):
    with caplog.at_level("INFO", logger="stormbench.agent.routing"):
        supervisor.respond("logged", "2 bed flat in Porto under 1000/month", "1.1")
        supervisor.respond("logged", "tell me a joke", "1.1")
    lines = [r.getMessage() for r in caplog.records if r.name == "stormbench.agent.routing"]
    assert len(lines) == 2
    assert "conversation=logged agent=real_estate" in lines[0] and "agent=general" in lines[1]
    assert "reason=below threshold" in lines[1]


class CarRental:
    """A second agent, as a new module would define it: proof that routing is open to more agents."""

    name = "car_rental"

    def __init__(self, context):
        pass

    def new_state(self):
        return None

    def read(self, request, state):
        return Reading(0.9 if "car" in request.text.lower() else 0.0, None, "car")

    def respond(self, request, reading, state):
        return Reply([{"agent": self.name, "text": "Cars: coming soon."}], "none", 0)


def test_discovery_finds_the_built_in_agents_in_routing_order():
    assert [s.name for s in discover()] == ["real_estate", "general"]


def test_a_new_agent_is_one_spec_and_takes_its_messages(listings_db, today):
    specs = [*discover(), AgentSpec("car_rental", CarRental, order=20)]
    s = Supervisor(listings_db, today=today, agents=specs)
    assert s.respond("c", "I want to rent a car in Lisbon", "1.1")[0]["agent"] == "car_rental"
    assert s.respond("d", "2 bed flat in Lisbon", "1.1")[0]["agent"] == "real_estate"
    assert s.respond("e", "hello", "1.1")[0]["agent"] == "general"
