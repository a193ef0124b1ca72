"""Recency weights: later views counted against brute force (ties, missing times), both clocks, the tastes."""

from __future__ import annotations

import numpy as np
import pytest

from film2vec.apps.tastes import taste_vectors
from film2vec.recency import SECONDS_PER_DAY, later_views, recency_weights


def brute_later(view_counts: np.ndarray, seconds: np.ndarray) -> list[int]:
    """For each view, the user's views strictly later, a missing time being the latest."""
    times = np.where(np.isnan(seconds), np.inf, seconds)
    starts = np.cumsum(view_counts) - view_counts
    return [
        sum(times[other] > times[view] for other in range(start, start + count))
        for start, count in zip(starts, view_counts)
        for view in range(start, start + count)
    ]


def test_later_views_count_strictly_later_views_of_the_same_user_only():
    rng = np.random.default_rng(0)
    view_counts = rng.integers(0, 9, size=40)
    seconds = rng.integers(0, 5, size=view_counts.sum()).astype(float)  # many ties
    seconds[rng.random(len(seconds)) < 0.1] = np.nan
    assert later_views(view_counts, seconds).tolist() == brute_later(view_counts, seconds)
    assert later_views(np.array([3]), np.array([2.0, 2.0, 2.0])).tolist() == [0, 0, 0]  # one session: no order


def test_weights_halve_per_half_life_on_each_clock_and_multiply():
    view_counts = np.array([3, 0, 2])
    seconds = np.array([0.0, SECONDS_PER_DAY, 2 * SECONDS_PER_DAY, 5.0, np.nan])
    assert recency_weights(view_counts, seconds).tolist() == [1.0] * 5
    assert recency_weights(view_counts, None, 1.0, 1.0).tolist() == [1.0] * 5  # no times: nothing to weigh by
    by_views = recency_weights(view_counts, seconds, half_life_views=2.0)
    np.testing.assert_allclose(by_views, [0.5, 0.5**0.5, 1.0, 0.5**0.5, 1.0])
    by_days = recency_weights(view_counts, seconds, half_life_days=1.0)
    np.testing.assert_allclose(by_days, [0.25, 0.5, 1.0, 1.0, 1.0])  # a view without a time is recent
    np.testing.assert_allclose(recency_weights(view_counts, seconds, 1.0, 2.0), by_views * by_days)


def test_a_taste_leans_to_the_latest_views_by_the_views_clock():
    unit = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    seconds = np.array([10.0, 20.0, 30.0, 5.0])  # user 0 watched (1, 0) twice, then (0, 1); user 1 once
    plain = taste_vectors(unit, np.array([3, 1]), seconds, None)
    np.testing.assert_allclose(plain, [[2 / 3, 1 / 3], [0.6, 0.8]])
    recent = taste_vectors(unit, np.array([3, 1]), seconds, None, half_life_views=1.0)
    np.testing.assert_allclose(recent, [[0.75 / 1.75, 1 / 1.75], [0.6, 0.8]])  # weights 0.25, 0.5, 1
    assert recent[0, 1] > recent[0, 0] and plain[0, 1] < plain[0, 0]


@pytest.mark.parametrize("half_life", [0.5, 3.0])
def test_weights_stay_positive_and_at_most_one(half_life):
    rng = np.random.default_rng(1)
    view_counts = rng.integers(1, 400, size=20)
    seconds = rng.uniform(0, 3e8, size=view_counts.sum())
    weights = recency_weights(view_counts, seconds, half_life, half_life)
    assert np.all(weights >= 0) and np.all(weights <= 1)
    starts = np.cumsum(view_counts) - view_counts
    assert np.all(np.maximum.reduceat(weights, starts) == 1.0)  # each user's latest view weighs 1
