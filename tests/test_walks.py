"""The sampling kernels against their probabilities, on arrays (no Spark)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from film2vec.seasons.walks import (
    Negatives,
    Origins,
    bipartite_samples,
    bipartite_users,
    coview_samples,
    draw_keys,
    origin_chunks,
    origin_streams,
    positions_in_lists,
    sample_states,
    samples_by_member,
    stratified_counts,
    stream_key,
    unigram_cumulative,
)

# Three origins in CSR form: origin 4 → {0: 1, 2: 2, 5: 3, 6: 10, 7: 4}, origin 0 → {4: 7}, origin 6 → {4: 1, 7: 1}
ORIGINS = np.array([4, 0, 6])
OFFSETS = np.array([0, 5, 6, 8])
NEIGHBOURS = np.array([0, 2, 5, 6, 7, 4, 4, 7])
CO_VIEWS = np.array([1, 2, 3, 10, 4, 7, 1, 1])

# Views of five users over six assets, each user's in viewing order; user 4 watched only asset 5, so asset 5
# leads nowhere
VIEWS = {0: [2, 0, 1], 1: [3, 0], 2: [4, 1, 3, 2], 3: [1, 4, 0, 3, 2], 4: [5]}


def with_negatives(key: np.uint64, drawn: tuple, negatives: Negatives) -> tuple:
    """(origin, sample, target) of a kernel and the negatives the trainer draws for them."""
    origin, sample, target = drawn
    return origin, sample, target, negatives.of_draws(key, origin, draw_keys(origin, sample), target)


def coview_season(season: int, per_origin: int, negatives: int = 5, seed: int = 7):
    counts = stratified_counts(len(ORIGINS), per_origin)
    key = stream_key(seed, season)
    drawn = coview_samples(key, ORIGINS, counts, OFFSETS, NEIGHBOURS, CO_VIEWS, negatives)
    return with_negatives(key, drawn, Negatives(negatives, 8))


def test_coview_targets_follow_co_view_proportions():
    draws = 50_000
    origin, _, target, _ = coview_season(0, draws)
    first = target[origin == 4]
    observed = np.array([(first == n).sum() for n in NEIGHBOURS[:5]])
    expected = CO_VIEWS[:5] / CO_VIEWS[:5].sum() * draws
    assert stats.chisquare(observed, expected).pvalue > 0.001
    uniform = np.full(5, draws / 5)
    assert stats.chisquare(observed, uniform).pvalue < 1e-6  # the test can tell a wrong distribution
    assert set(target[origin == 0]) == {4}
    assert set(target[origin == 6]) == {4, 7}


def bipartite_transition(views: dict[int, list[int]], n_assets: int) -> np.ndarray:
    """P(b | a) = Σ_u [1/deg(a)]·[1/(deg(u) − 1)] by brute force over users with deg(u) ≥ 2."""
    onward = {user: assets for user, assets in views.items() if len(assets) >= 2}
    degree = np.bincount([a for assets in onward.values() for a in assets], minlength=n_assets)
    transition = np.zeros((n_assets, n_assets))
    for assets in onward.values():
        for a in assets:
            for b in assets:
                if a != b:
                    transition[a, b] += 1 / degree[a] / (len(assets) - 1)
    return transition


def window_transition(views: dict[int, list[int]], n_assets: int, window: int) -> np.ndarray:
    """P(b | a) = Σ_u [1/deg(a)]·[b within `window` views of a in u's history]/(size of that window − 1)."""
    onward = {user: assets for user, assets in views.items() if len(assets) >= 2}
    degree = np.bincount([a for assets in onward.values() for a in assets], minlength=n_assets)
    transition = np.zeros((n_assets, n_assets))
    for assets in onward.values():
        for i, a in enumerate(assets):
            near = [b for j, b in enumerate(assets) if j != i and abs(j - i) <= window]
            for b in near:
                transition[a, b] += 1 / degree[a] / len(near)
    return transition


def bipartite_season(
    views: dict[int, list[int]], n_assets: int, per_origin: int, season: int = 0, seed: int = 3, window: int = 0
):
    """Both steps of the bipartite walk in one process, from per-asset user lists and per-user asset lists
    (in viewing order with a `window`, else sorted)."""
    onward = {user: assets if window else sorted(assets) for user, assets in views.items() if len(assets) >= 2}
    users_of = {a: sorted(u for u, assets in onward.items() if a in assets) for a in range(n_assets)}
    origins = np.array([a for a in range(n_assets) if users_of[a]])
    asset_offsets = np.cumsum([0] + [len(users_of[a]) for a in origins])
    users = np.concatenate([users_of[a] for a in origins])
    key, count = stream_key(seed, season), 2
    origin, sample, position = bipartite_users(
        key, origins, stratified_counts(len(origins), per_origin), asset_offsets, count
    )
    user = users[position]
    user_offsets = np.cumsum([0] + [len(onward.get(u, [])) for u in range(max(views) + 1)])
    assets = np.concatenate([onward.get(u, []) for u in range(max(views) + 1)]).astype(np.int64)
    start, size = user_offsets[user], np.diff(user_offsets)[user]
    origin_at = positions_in_lists(user_offsets, assets, user, origin) if window else None
    drawn = bipartite_samples(key, origin, sample, start, size, assets, count, window, origin_at)
    return with_negatives(key, drawn, Negatives(count, n_assets))


def assert_targets_follow(transition: np.ndarray, origin: np.ndarray, target: np.ndarray, per_origin: int) -> None:
    """Each origin with a walk (assets 0–4) drew per_origin targets, none it cannot reach, at the frequencies of
    its row of `transition` (chi-square)."""
    for a in range(5):
        possible = np.flatnonzero(transition[a])
        observed = np.bincount(target[origin == a], minlength=len(transition))
        assert observed.sum() == per_origin and observed[np.flatnonzero(transition[a] == 0)].sum() == 0
        assert stats.chisquare(observed[possible], transition[a, possible] * per_origin).pvalue > 0.001


def test_bipartite_walk_follows_its_transition_formula():
    per_origin = 20_000
    origin, _, target, negatives = bipartite_season(VIEWS, 6, per_origin)
    transition = bipartite_transition(VIEWS, 6)
    assert set(origin) == {0, 1, 2, 3, 4}  # asset 5's only viewer watched nothing else
    np.testing.assert_allclose(transition[:5].sum(axis=1), 1.0)
    assert_targets_follow(transition, origin, target, per_origin)
    coview = np.zeros((6, 6))  # the co-view walk's P(b | a) ∝ co_views differs: the test can tell them apart
    for assets in VIEWS.values():
        for a in assets:
            coview[a, [b for b in assets if b != a]] += 1
    reachable = np.flatnonzero(coview[0])
    coview_expected = coview[0, reachable] / coview[0].sum() * per_origin
    assert stats.chisquare(np.bincount(target[origin == 0], minlength=6)[reachable], coview_expected).pvalue < 1e-6
    assert (negatives != origin[:, None]).all() and (negatives != target[:, None]).all()


@pytest.mark.parametrize("window", [1, 2])
def test_windowed_walk_follows_its_transition_formula(window):
    per_origin = 20_000
    origin, _, target, negatives = bipartite_season(VIEWS, 6, per_origin, window=window)
    transition = window_transition(VIEWS, 6, window)
    np.testing.assert_allclose(transition[:5].sum(axis=1), 1.0)
    assert_targets_follow(transition, origin, target, per_origin)
    whole = bipartite_transition(VIEWS, 6)  # the whole-history walk reaches more: the test can tell them apart
    assert (whole[transition == 0] > 0).any()
    assert (negatives != origin[:, None]).all() and (negatives != target[:, None]).all()


def test_a_window_as_wide_as_the_history_is_the_whole_history_walk():
    per_origin = 20_000
    origin, _, target, _ = bipartite_season(VIEWS, 6, per_origin, window=4)
    np.testing.assert_allclose(window_transition(VIEWS, 6, 4), bipartite_transition(VIEWS, 6))
    assert_targets_follow(bipartite_transition(VIEWS, 6), origin, target, per_origin)


def test_positions_in_lists_finds_each_item_in_its_own_list():
    offsets, items = np.array([0, 3, 5]), np.array([7, 2, 9, 2, 4])
    found = positions_in_lists(offsets, items, np.array([0, 1, 1, 0]), np.array([9, 2, 4, 7]))
    np.testing.assert_array_equal(found, [2, 3, 4, 0])
    with pytest.raises(ValueError, match="not in its list"):
        positions_in_lists(offsets, items, np.array([1]), np.array([9]))


def test_samples_grouped_by_member_expand_to_the_same_samples():
    offsets = np.array([0, 3, 4, 6])  # origins 0, 1, 2 with 3, 1 and 2 users
    origin, sample, position = bipartite_users(stream_key(5, 0), np.array([0, 1, 2]), np.array([40, 7, 9]), offsets, 2)
    group_origin, group_position, group_offsets, grouped = samples_by_member(origin, sample, position)
    assert len(group_position) == len(np.unique(position)) and (np.diff(group_position) > 0).all()
    per_group = np.diff(group_offsets)
    expanded = zip(np.repeat(group_origin, per_group), grouped, np.repeat(group_position, per_group))
    assert sorted(expanded) == sorted(zip(origin, sample, position))
    none = samples_by_member(*bipartite_users(stream_key(5, 0), np.array([0, 1]), np.array([0, 0]), offsets[:3], 2))
    assert [len(part) for part in none] == [0, 0, 1, 0]  # origins that drew nothing: no group, offsets [0]


def test_bipartite_walk_is_a_function_of_seed_and_season():
    first, again, other = (bipartite_season(VIEWS, 6, 100, season) for season in (0, 0, 1))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[2], other[2])


def test_uniform_negatives_are_uniform_over_the_other_assets():
    n_assets, count, samples = 9, 4, 40_000
    states = origin_streams(stream_key(1, 2), np.arange(samples))
    negatives = Negatives(count, n_assets).draw(states, np.full(samples, 3), np.full(samples, 7))
    assert negatives.shape == (samples, count)
    assert not np.isin(negatives, [3, 7]).any()
    observed = np.bincount(negatives.ravel(), minlength=n_assets)[[0, 1, 2, 4, 5, 6, 8]]
    assert stats.chisquare(observed).pvalue > 0.001


@pytest.mark.parametrize("distribution", ["uniform", "unigram"])
def test_negatives_avoid_origin_and_target_whatever_their_order(distribution):
    rng = np.random.default_rng(5)
    origins = rng.integers(0, 4, 10_000)
    targets = (origins + rng.integers(1, 4, 10_000)) % 4
    cumulative = unigram_cumulative(np.array([1, 50, 3, 1000]), 0.75) if distribution == "unigram" else None
    states = origin_streams(stream_key(0, 0), np.arange(10_000))
    negatives = Negatives(3, 4, cumulative).draw(states, origins, targets)
    assert (negatives != origins[:, None]).all() and (negatives != targets[:, None]).all()
    assert negatives.min() >= 0 and negatives.max() <= 3


def test_unigram_negatives_follow_views_to_the_alpha_without_origin_and_target():
    views = np.array([1, 4, 9, 100, 2, 30, 7, 500])
    samples, count, alpha = 30_000, 3, 0.75
    negatives = Negatives(count, len(views), unigram_cumulative(views, alpha))
    drawn = negatives.draw(
        origin_streams(stream_key(4, 1), np.arange(samples)), np.full(samples, 7), np.full(samples, 2)
    )
    observed = np.bincount(drawn.ravel(), minlength=len(views))
    assert observed[[7, 2]].sum() == 0
    others = [0, 1, 3, 4, 5, 6]
    weights = views[others] ** alpha
    assert stats.chisquare(observed[others], weights / weights.sum() * samples * count).pvalue > 0.001
    plain = views[others] / views[others].sum() * samples * count  # α = 1 is told apart
    assert stats.chisquare(observed[others], plain).pvalue < 1e-6


def test_origins_drawn_in_proportion_to_views_to_the_beta():
    views = np.array([1, 3, 10, 40, 200, 7])
    streams = origin_streams(stream_key(2, 0), np.arange(len(views)))
    totals = np.zeros(len(views))
    for season in range(200):  # counts of one season are small: pool seasons
        streams = origin_streams(stream_key(2, season), np.arange(len(views)))
        totals += Origins.weighted(50 * len(views), 0.5, views).counts(streams, views)
    expected = np.sqrt(views) / np.sqrt(views).sum() * totals.sum()
    assert stats.chisquare(totals, expected).pvalue > 0.001
    assert abs(totals.sum() / 200 - 50 * len(views)) < 4 * np.sqrt(50 * len(views) / 200)  # mean per origin
    assert stats.chisquare(totals, np.full(len(views), totals.mean())).pvalue < 1e-6
    np.testing.assert_array_equal(Origins(50).counts(streams, views), np.full(len(views), 50))


def test_a_capped_season_takes_its_cut_from_the_most_viewed_origins_only():
    views = np.array([1, 3, 10, 40, 200, 7])
    uncapped = Origins.weighted(30 * views.sum(), 1.0, views)
    capped = uncapped.capped(30 * 60, views)  # a season of 1,800 samples instead of 7,830
    assert uncapped.capped(30 * views.sum(), views) == uncapped  # a bound that does not bind changes nothing
    # 1, 3, 7 and 10 views keep 30 samples a view (630); 40 and 200 share the other 1,170 equally
    expected = np.array([30, 90, 300, 585, 585, 210])
    totals = np.zeros(len(views))
    for season in range(200):
        streams = origin_streams(stream_key(3, season), np.arange(len(views)))
        totals += capped.counts(streams, views)
    assert stats.chisquare(totals, expected / expected.sum() * totals.sum()).pvalue > 0.001
    assert abs(totals.sum() / 200 - 1_800) < 4 * np.sqrt(1_800 / 200)
    stratified = Origins(50)
    assert stratified.capped(10, views) == stratified  # the same count for every origin: nothing to cap
    # a bound equal to the season's size, within rounding of the weights' sums (β = 0.75 here), does not bind
    rounding = np.array([90, 103, 183, 149, 112, 196, 141, 1, 5, 153, 41, 87, 13, 137, 91, 43, 49, 46, 121, 154])
    rounding = np.concatenate([rounding, [13, 152, 111, 133, 14, 9, 84, 88, 9, 53, 170, 13, 141, 41, 126, 127]])
    whole = Origins.weighted(30 * rounding.sum(), 0.75, rounding)
    assert whole.capped(30 * rounding.sum(), rounding) == whole


def test_same_season_same_samples_other_season_fresh_ones():
    first, again, other = coview_season(0, 200), coview_season(0, 200), coview_season(1, 200)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[2], other[2])
    assert not np.array_equal(first[3], other[3])


def test_draw_keys_order_samples_by_origin_then_number_and_are_unique():
    origin, sample, _, _ = coview_season(0, 30)
    keys = draw_keys(origin, sample)
    assert len(np.unique(keys)) == len(keys)
    for origin_index in ORIGINS:
        assert np.all(np.diff(keys[origin == origin_index]) == 1)  # an origin's samples in number order
    np.testing.assert_array_equal(keys >> 32, origin)
    np.testing.assert_array_equal(keys & (2**32 - 1), sample)


def test_a_block_split_anywhere_gives_the_same_samples():
    key, negatives, counts = stream_key(3, 4), 2, np.array([50, 20, 70])
    whole = coview_samples(key, ORIGINS, counts, OFFSETS, NEIGHBOURS, CO_VIEWS, negatives)
    head = coview_samples(key, ORIGINS[:1], counts[:1], OFFSETS[:2], NEIGHBOURS[:5], CO_VIEWS[:5], negatives)
    tail = coview_samples(key, ORIGINS[1:], counts[1:], OFFSETS[1:] - 5, NEIGHBOURS[5:], CO_VIEWS[5:], negatives)
    for joined, part_a, part_b in zip(whole, head, tail):
        np.testing.assert_array_equal(joined, np.concatenate([part_a, part_b]))


def test_the_negatives_drawn_from_a_draw_key_are_those_its_stream_reserves():
    """The trainer's negatives for a written sample are the ones at its stream's negative slots: the same for
    the same draw whatever else is in the batch, different for another draw."""
    key, plan = stream_key(3, 4), Negatives(6, 8)
    origin, sample, target = coview_samples(key, ORIGINS, np.array([40, 40, 40]), OFFSETS, NEIGHBOURS, CO_VIEWS, 6)
    states = sample_states(origin_streams(key, origin), sample, 6)  # the states the walk's kernel used
    drawn = plan.of_draws(key, origin, draw_keys(origin, sample), target)
    np.testing.assert_array_equal(drawn, plan.draw(states, origin, target))
    shuffled = np.random.default_rng(0).permutation(len(origin))
    again = plan.of_draws(key, origin[shuffled], draw_keys(origin, sample)[shuffled], target[shuffled])
    np.testing.assert_array_equal(again, drawn[shuffled])
    assert len({tuple(row) for row in drawn.tolist()}) > len(drawn) * 0.9  # one draw, one set of negatives


def test_origin_chunks_cover_every_origin_once_in_order():
    counts = np.array([3, 0, 9, 1, 1, 1, 12, 2])
    chunks = origin_chunks(counts, 5)
    assert [start for start, _ in chunks] == [0] + [stop for _, stop in chunks[:-1]] and chunks[-1][1] == len(counts)
    assert all(counts[start : stop - 1].sum() < 5 for start, stop in chunks)  # a chunk closes once it has enough
    assert origin_chunks(np.array([], dtype=np.int64), 5) == []
