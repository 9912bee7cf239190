"""The search policy as a pure state machine: messages in, decisions out, no database."""
from __future__ import annotations

import datetime as dt

import pytest

from system.agent.agents.real_estate.policy import Ask, Clarify, Search, SearchPolicy, State
from system.agent.agents.real_estate.tools import Listing
from system.agent.agents.real_estate.understand import understand

TODAY = dt.date(2026, 11, 26)


def say(policy: SearchPolicy, text: str):
    return policy.handle(understand(text, TODAY))


def listing(lid: int, price: int, bedrooms: int = 2) -> Listing:
    return Listing(lid, "t", "Lisbon", "Alfama", "long", bedrooms, price, "EUR", "month", True, False,
                   dt.date(2026, 12, 1), 4.5)


def test_ambiguous_tenure_is_asked_and_the_answer_remembered():
    p = SearchPolicy()
    d = say(p, "2 bedroom flat in Lisbon")
    assert isinstance(d, Ask) and d.slot == "tenure" and p.state is State.TENURE_DECIDE
    assert isinstance(say(p, "hmm"), Ask)  # an answer that says nothing: asked again, nothing lost
    d = say(p, "long let")
    assert isinstance(d, Search) and not d.refine
    assert (d.criteria.tenure, d.criteria.city, d.criteria.bedrooms) == ("long", "Lisbon", 2)


def test_missing_place_is_asked_after_tenure():
    p = SearchPolicy()
    d = say(p, "a short stay 3-10 Dec under 90 a night")
    assert isinstance(d, Ask) and d.slot == "place" and p.state is State.PLACE_DECIDE
    d = say(p, "Porto")
    assert isinstance(d, Search) and d.criteria.city == "Porto" and d.criteria.max_price == 90
    assert (d.criteria.check_in, d.criteria.check_out) == (dt.date(2026, 12, 3), dt.date(2026, 12, 10))


def test_a_stay_without_an_end_asks_for_the_check_out():
    p = SearchPolicy()
    d = say(p, "short stay in Lisbon from 12 Dec")
    assert isinstance(d, Ask) and d.slot == "check_out"
    d = say(p, "until 15 Dec")
    assert isinstance(d, Search) and (d.criteria.check_in, d.criteria.check_out) == (
        dt.date(2026, 12, 12), dt.date(2026, 12, 15))


def test_the_check_out_question_takes_a_number_of_nights():
    p = SearchPolicy()
    assert isinstance(say(p, "short stay in Porto from 20 Dec"), Ask)
    d = say(p, "for 4 nights")
    assert isinstance(d, Search) and (d.criteria.check_in, d.criteria.check_out) == (
        dt.date(2026, 12, 20), dt.date(2026, 12, 24))


def test_refinements_change_only_what_they_name():
    p = SearchPolicy()
    d = say(p, "long let in Lisbon, 2 bedrooms, from 1 January")
    assert isinstance(d, Search)
    p.results([listing(1, 1400), listing(2, 1250), listing(3, 1600)])
    d = say(p, "cheaper")
    assert d.refine and d.criteria.max_price == 1249  # cheaper than everything shown
    assert (d.criteria.bedrooms, d.criteria.move_in) == (2, dt.date(2027, 1, 1))
    p.results([])
    d = say(p, "with 3 bedrooms")
    assert d.refine and (d.criteria.bedrooms, d.criteria.max_price) == (3, 1249)
    p.results([listing(4, 1200, 3)])
    d = say(p, "bigger")
    assert (d.criteria.bedrooms, d.criteria.min_bedrooms) == (None, 4)


def test_a_new_full_request_starts_over_but_a_bare_place_refines():
    p = SearchPolicy()
    say(p, "long let in Lisbon, 2 bedrooms, under 1500/month")
    p.results([listing(1, 1400)])
    d = say(p, "what about Porto?")
    assert (d.criteria.city, d.criteria.bedrooms, d.criteria.max_price) == ("Porto", 2, 1500)
    p.results([])
    d = say(p, "a short stay in Madrid 3-10 Dec")
    assert (d.criteria.city, d.criteria.tenure, d.criteria.bedrooms, d.criteria.max_price) == (
        "Madrid", "short", None, None)


def test_a_budget_in_another_currency_is_dropped_when_the_city_changes():
    p = SearchPolicy()
    say(p, "long let in Lisbon under 1500/month")
    p.results([])
    d = say(p, "London instead")
    assert d.criteria.city == "London" and d.criteria.max_price is None


def test_nothing_understood_is_a_clarification_and_changes_nothing():
    p = SearchPolicy()
    assert say(p, "blah") == Clarify("unparsed")
    assert p.state is State.IDLE
    say(p, "long let in Lisbon")
    p.results([])
    before = p.criteria
    assert say(p, "ok then") == Clarify("nothing_to_refine")
    assert isinstance(say(p, "from 31 feb"), Clarify) and p.criteria == before


def test_results_out_of_turn_is_a_bug_not_a_silent_state_change():
    with pytest.raises(RuntimeError, match="expected search"):
        SearchPolicy().results([])
