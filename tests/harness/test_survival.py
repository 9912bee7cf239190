"""Kaplan–Meier against hand-computed estimates, censoring included."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formats.record.survival import kaplan_meier


def test_without_censoring_it_is_the_empirical_distribution():
    km = kaplan_meier(np.array([5, 1, 4, 2, 3.0]), np.ones(5, bool))
    assert km.times.tolist() == [1, 2, 3, 4, 5]
    assert km.survival == pytest.approx([0.8, 0.6, 0.4, 0.2, 0.0])
    assert km.quantile(0.5) == 3.0 and km.quantile(0.95) == 5.0 and km.quantile(0.2) == 1.0
    assert km.restricted_mean() == (pytest.approx(3.0), True)


def test_censored_lifetimes_count_as_evidence():
    # 1 ends (5 at risk) -> 0.8; 2 censored; 3 ends (3 at risk) -> 0.8*2/3; 4 censored; 5 ends (1 at risk) -> 0
    km = kaplan_meier(np.array([1, 2, 3, 4, 5.0]), np.array([1, 0, 1, 0, 1], bool))
    assert km.survival == pytest.approx([0.8, 0.8 * 2 / 3, 0.0])
    assert km.quantile(0.5) == 5.0          # dropping the censored ones would say 3
    assert np.median([1, 3, 5]) == 3.0
    assert (km.n, km.events) == (5, 3)


def test_quantile_beyond_the_observation_is_unknown():
    km = kaplan_meier(np.array([1.0, 10, 10, 10]), np.array([1, 0, 0, 0], bool))
    assert km.survival == pytest.approx([0.75])
    assert km.quantile(0.2) == 1.0
    assert km.quantile(0.5) is None and km.t_max == 10.0
    mean, exact = km.restricted_mean()
    assert (mean, exact) == (pytest.approx(1 * 1.0 + 9 * 0.75), False)


def test_ties_count_ends_before_censorings():
    km = kaplan_meier(np.array([2.0, 2.0, 3.0]), np.array([1, 0, 1], bool))
    assert km.survival == pytest.approx([2 / 3, 0.0])


def test_empty():
    km = kaplan_meier(np.array([]), np.array([], bool))
    assert km.quantile(0.5) is None and km.restricted_mean() == (None, False)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=200),
       st.sampled_from([0.05, 0.5, 0.9, 0.95, 0.99]))
def test_uncensored_quantiles_are_the_inverted_cdf(durations, q):
    d = np.asarray(durations, dtype=float)
    km = kaplan_meier(d, np.ones(d.size, bool))
    assert km.quantile(q) == np.quantile(d, q, method="inverted_cdf")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.booleans(), st.integers(1, 5)), min_size=1, max_size=40))
def test_a_weighted_row_counts_as_that_many_rows(rows):
    """A weighted model agent's connection is one row of weight w (connections.csv's `weight`): the
    estimate must be that of the table with the row repeated w times, ties and censoring included."""
    durations = np.array([float(d) for d, _, _ in rows])
    ended = np.array([e for _, e, _ in rows])
    weights = np.array([w for _, _, w in rows])
    weighted = kaplan_meier(durations, ended, weights)
    repeated = kaplan_meier(np.repeat(durations, weights), np.repeat(ended, weights))
    assert (weighted.n, weighted.events, weighted.t_max) == (repeated.n, repeated.events, repeated.t_max)
    np.testing.assert_array_equal(weighted.times, repeated.times)
    np.testing.assert_allclose(weighted.survival, repeated.survival, rtol=1e-12)
    for q in (0.5, 0.95):
        assert weighted.quantile(q) == repeated.quantile(q)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.booleans(), st.integers(0, 4)), min_size=1, max_size=60),
       st.booleans(), st.sampled_from([1, 3, 1 << 20]))
def test_the_estimate_is_the_product_limit_by_its_definition(rows, uniform, chunk):
    """Ends and censorings are sorted apart and the times looked up a chunk at a time: the same
    numbers, exactly, as the product over each end time of 1 - ends / at risk (whole weights)."""
    import formats.record.survival as survival

    durations = np.array([r[0] for r in rows], float) / 4
    ended = np.array([r[1] for r in rows])
    weights = np.full(len(rows), 2) if uniform else np.array([r[2] for r in rows])
    saved, survival.LOOKUP_CHUNK = survival.LOOKUP_CHUNK, chunk
    try:
        km = kaplan_meier(durations, ended, weights)
    finally:
        survival.LOOKUP_CHUNK = saved
    level, times, levels = 1.0, [], []
    for t in sorted(set(durations[ended & (weights > 0)])):
        level *= 1.0 - weights[ended & (durations == t)].sum() / weights[durations >= t].sum()
        times.append(t)
        levels.append(level)
    np.testing.assert_array_equal(km.times, times)
    np.testing.assert_array_equal(km.survival, levels)
    np.testing.assert_array_equal(km.censored_times, np.sort(durations[~ended]))
    assert (km.n, km.events, km.t_max) == (weights.sum(), weights[ended].sum(), durations.max())
