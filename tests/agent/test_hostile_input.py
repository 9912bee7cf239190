"""Hostile numbers and dates get a polite answer, not an exception (regressions: a 40-digit
budget overflowed float -> int or SQLite's integers; a stay from 9999-12-31 overflowed the date)."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from system.agent.agents.real_estate.understand import MAX_AMOUNT


@pytest.mark.parametrize("text", [
    "flat in Lisbon under 99999999999999999999999999999999 a month",
    "flat in Porto under 1" + "0" * 400 + " per night",
    "short let in Lisbon from 9999-12-31 for 3 nights",
    "short let in Lisbon from 9999-12-30 for 99999999999 nights",
    "short let in Lisbon from 28 dec to 3 jan 9999",
    "2 bed flat in Lisbon under 1e308 a month",
    "studio in Porto for 9999999999 weeks from 2026-01-01",
])
def test_hostile_numbers_and_dates_get_an_answer(supervisor, text):
    replies = supervisor.respond("hostile", text, "1.1")
    assert replies and all(isinstance(r.get("text"), str) and r["text"] for r in replies)


def test_a_huge_budget_means_no_limit(supervisor):
    huge = supervisor.respond("a", "2 bed flat in Lisbon under 10" + "0" * 60 + " a month", "1.1")
    plain = supervisor.respond("b", f"2 bed flat in Lisbon under {MAX_AMOUNT} a month", "1.1")
    assert [r["text"] for r in huge] == [r["text"] for r in plain]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(number=st.integers(min_value=0, max_value=10**60), year=st.integers(min_value=1, max_value=9999),
       template=st.sampled_from([
           "flat in Lisbon under {n} a month", "short let in Porto from {y}-12-31 for {n} nights",
           "short let in Lisbon from 30 dec {y} for {n} weeks", "{n} bedroom house in Porto from 1 jan {y}",
           "studio in Lisbon under {n}k per night from {y}-01-01 to {y}-12-31"]))
def test_any_number_or_year_gets_an_answer(supervisor, number, year, template):
    replies = supervisor.respond("fuzz", template.format(n=number, y=f"{year:04d}"), "1.1")
    assert replies and all(isinstance(r.get("text"), str) for r in replies)
