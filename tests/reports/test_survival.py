"""Kaplan–Meier against hand-computed estimates, censoring included (the one estimator, read as the
reports read it: a censored flag per lifetime)."""
import numpy as np
import pytest

from formats.record.survival import kaplan_meier as _km


def kaplan_meier(durations, censored):
    return _km(durations, ~np.asarray(censored, dtype=bool))


def test_hand_computed_curve_with_one_censored():
    # 10 dies (4 at risk), 20 censored, 30 dies (2 at risk), 40 dies (1 at risk)
    curve = kaplan_meier(np.array([10, 20, 30, 40]), np.array([False, True, False, False]))
    assert curve.times.tolist() == [10, 30, 40]
    assert curve.survival == pytest.approx([0.75, 0.375, 0.0])
    assert curve.censored_times.tolist() == [20]
    assert curve.censored_survival == pytest.approx([0.75])
    assert curve.at(5) == 1.0 and curve.at(29.9) == pytest.approx(0.75)


def test_censored_connections_are_evidence_not_dropped():
    # Dropping the 9 censored 1000 s connections (as k6 does) would give p50 = 10 s.
    durations = np.array([10.0] + [1000.0] * 9)
    censored = np.array([False] + [True] * 9)
    curve = kaplan_meier(durations, censored)
    assert curve.survival.tolist() == pytest.approx([0.9])
    assert curve.quantile(0.5) is None  # not observed long enough: unknown, never a guess


def test_tie_between_death_and_censoring_counts_censored_as_at_risk():
    curve = kaplan_meier(np.array([5.0, 5.0, 8.0]), np.array([False, True, False]))
    assert curve.survival == pytest.approx([2 / 3, 0.0])


def test_quantiles_of_uncensored_sample_are_the_order_statistics():
    durations = np.arange(1, 101, dtype=float)
    curve = kaplan_meier(durations, np.zeros(100, dtype=bool))
    assert curve.quantile(0.5) == 50.0
    assert curve.quantile(0.95) == 95.0


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError, match="same length"):
        kaplan_meier(np.array([1.0, 2.0]), np.array([False]))
