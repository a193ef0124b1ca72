"""The sampling kernels against their probabilities, on arrays (no Spark)."""

from __future__ import annotations

import numpy as np
from scipy import stats

from film2vec.walks import draw_coview_targets, draw_uniform_negatives, sample_coview_season, stream_key

# Three origins in CSR form: origin 4 → {0: 1, 2: 2, 5: 3, 6: 10, 7: 4}, origin 0 → {4: 7}, origin 6 → {4: 1, 7: 1}
ORIGINS = np.array([4, 0, 6])
OFFSETS = np.array([0, 5, 6, 8])
NEIGHBOURS = np.array([0, 2, 5, 6, 7, 4, 4, 7])
CO_VIEWS = np.array([1, 2, 3, 10, 4, 7, 1, 1])


def test_targets_follow_co_view_proportions():
    draws = 50_000
    origin, target = draw_coview_targets(stream_key(0, 0), ORIGINS, OFFSETS, NEIGHBOURS, CO_VIEWS, draws)
    first = target[origin == 4]
    observed = np.array([(first == n).sum() for n in NEIGHBOURS[:5]])
    expected = CO_VIEWS[:5] / CO_VIEWS[:5].sum() * draws
    assert stats.chisquare(observed, expected).pvalue > 0.001
    uniform = np.full(5, draws / 5)
    assert stats.chisquare(observed, uniform).pvalue < 1e-6  # the test can tell a wrong distribution
    assert set(target[origin == 0]) == {4}
    assert set(target[origin == 6]) == {4, 7}


def test_negatives_are_uniform_over_the_other_assets():
    n_assets, count, samples = 9, 4, 40_000
    origins = np.full(samples, 3)
    targets = np.full(samples, 7)
    negatives = draw_uniform_negatives(stream_key(1, 2), origins, targets, np.arange(samples), n_assets, count)
    assert negatives.shape == (samples, count)
    assert not np.isin(negatives, [3, 7]).any()
    observed = np.bincount(negatives.ravel(), minlength=n_assets)[[0, 1, 2, 4, 5, 6, 8]]
    assert stats.chisquare(observed).pvalue > 0.001


def test_negatives_avoid_origin_and_target_whatever_their_order():
    rng = np.random.default_rng(5)
    origins = rng.integers(0, 4, 10_000)
    targets = (origins + rng.integers(1, 4, 10_000)) % 4
    negatives = draw_uniform_negatives(stream_key(0, 0), origins, targets, np.arange(10_000), 4, 3)
    assert (negatives != origins[:, None]).all() and (negatives != targets[:, None]).all()
    assert negatives.min() >= 0 and negatives.max() <= 3


def test_same_season_same_samples_other_season_fresh_ones():
    def season(number: int):
        return sample_coview_season(stream_key(7, number), ORIGINS, OFFSETS, NEIGHBOURS, CO_VIEWS, 200, 8, 5)

    first, again, other = season(0), season(0), season(1)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[1], other[1])
    assert not np.array_equal(first[2], other[2])


def test_a_block_split_anywhere_gives_the_same_samples():
    key = stream_key(3, 4)
    whole = sample_coview_season(key, ORIGINS, OFFSETS, NEIGHBOURS, CO_VIEWS, 50, 8, 2)
    head = sample_coview_season(key, ORIGINS[:1], OFFSETS[:2], NEIGHBOURS[:5], CO_VIEWS[:5], 50, 8, 2)
    tail = sample_coview_season(key, ORIGINS[1:], OFFSETS[1:] - 5, NEIGHBOURS[5:], CO_VIEWS[5:], 50, 8, 2)
    for joined, part_a, part_b in zip(whole, head, tail):
        np.testing.assert_array_equal(joined, np.concatenate([part_a, part_b]))
