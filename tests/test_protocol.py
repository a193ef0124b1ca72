"""The evaluation protocol on hand-checked examples, and against a pure-Python reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from film2vec.apps.ranking import popularity_prior, rank_candidates
from film2vec.evaluation.protocol import (
    Split,
    evaluate,
    genre_precision,
    next_watch,
    next_watch_of_user_vectors,
    split_views,
)
from film2vec.serving.nearest import top_k

LOG2_3 = math.log2(3)


def codes(views: dict[int, list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(user, asset) code arrays from {user: assets}."""
    user = [u for u, assets in views.items() for _ in assets]
    asset = [a for assets in views.values() for a in assets]
    return np.array(user, dtype=np.int64), np.array(asset, dtype=np.int64)


def make_split(train: dict[int, list[int]], test: dict[int, list[int]], catalogue: int = 0) -> Split:
    """A Split from {user: assets} lists, for examples that skip split_views.

    User 99 (no test views, so not evaluated) watches assets 0..catalogue-1, putting them in the catalogue.
    """
    return Split(*codes({**train, 99: list(range(catalogue))}), *codes(test))


def test_split_orders_by_time_then_asset_and_keeps_earliest_view() -> None:
    # user 0, distinct views after keeping the earliest: a2@0 a8@0 | a1@1 a3@1 | a4@2 a5@2 | a0@3 a6@3 | a7@4
    # (a3@9 and a8@9 are later repeats; a8@0 comes second in the input). Ordered by (time, asset):
    # 2 8 1 3 4 5 0 6 7 -> train 2 8 1 3, test 4 5 0 6 7.
    # user 1: 5 distinct views (a4 twice) -> too few, all train, by time: 4@0 3@1 2@2 1@3 0@4.
    # user 2: 6 distinct views, no times -> by asset 1 2 3 5 7 9 -> train 1, test 2 3 5 7 9.
    views_by_user = {  # user: [(asset, time), ...]
        0: [(3, 1), (1, 1), (8, 9), (2, 0), (5, 2), (4, 2), (0, 3), (6, 3), (3, 9), (7, 4), (8, 0)],
        1: [(0, 4), (1, 3), (2, 2), (3, 1), (4, 0), (4, 7)],
        2: [(9, 0), (3, 0), (7, 0), (1, 0), (5, 0), (2, 0)],
    }
    user = np.array([u for u, views in views_by_user.items() for _ in views])
    asset = np.array([a for views in views_by_user.values() for a, _ in views])
    viewed_at = np.array([t for views in views_by_user.values() for _, t in views])
    split = split_views(user, asset, viewed_at)
    assert split.train_user.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1, 2]
    assert split.train_asset.tolist() == [2, 8, 1, 3, 4, 3, 2, 1, 0, 1]
    assert split.test_user.tolist() == [0] * 5 + [2] * 5
    assert split.test_asset.tolist() == [4, 5, 0, 6, 7, 2, 3, 5, 7, 9]


def test_split_without_times_orders_by_asset() -> None:
    split = split_views(np.zeros(7, dtype=np.int64), np.array([6, 0, 5, 1, 4, 2, 3]))
    assert split.train_asset.tolist() == [0, 1]
    assert split.test_asset.tolist() == [2, 3, 4, 5, 6]


# Two-dimensional assets: a0 (1,0) 0°, a1 (0,1) 90°, a2 (1,1) 45°, a3 (1,-1) -45°, a4 (-1,0) 180°,
# a5 (2,1) 26.6°, a6 (1,2) 63.4°.
PLANE = np.array([[1, 0], [0, 1], [1, 1], [1, -1], [-1, 0], [2, 1], [1, 2]], dtype=float)


def test_recall_and_ndcg_on_two_users() -> None:
    # user 0: train a0, taste 0°. cos: a5 .894, a2 .707, a3 .707 (tie -> a2 first), a6 .447, a1 0, a4 -1.
    #   top-3 a5 a2 a3; test {a3, a1}: hit at rank 3 -> recall 1/2, DCG 1/log2(4) = 1/2.
    # user 1: train a1 a4, taste (-.5,.5) 135°. cos: a6 .316, a2 0, a5 -.316, a0 -.707, a3 -1.
    #   top-3 a6 a2 a5; test {a6, a0}: hit at rank 1 -> recall 1/2, DCG 1.
    # ideal DCG over 2 hits = 1 + 1/log2(3).
    split = make_split({0: [0], 1: [1, 4]}, {0: [3, 1], 1: [6, 0]}, catalogue=7)
    metrics = next_watch(PLANE, split, k=3)
    assert metrics["recall_at_3"] == pytest.approx(0.5)
    assert metrics["ndcg_at_3"] == pytest.approx((0.5 + 1.0) / 2 / (1 + 1 / LOG2_3))


def test_train_assets_are_not_recommended() -> None:
    # a0 is the user's own train asset (cos 1); excluded, a5 (cos .894) is the single recommendation.
    metrics = next_watch(PLANE, make_split({0: [0]}, {0: [5]}, catalogue=7), k=1)
    assert metrics == {"recall_at_1": 1.0, "ndcg_at_1": 1.0}


def test_assets_outside_the_events_are_not_candidates() -> None:
    # The catalogue is a0 (watched), a4 and a6 (tests): a6 (cos .447) then a4 (cos -1), though a5 (.894)
    # has a vector. k=1: hit a6 -> recall 1/2; NDCG 1 (ideal DCG over min(2, 1) = 1 hit).
    metrics = next_watch(PLANE, make_split({0: [0]}, {0: [4, 6]}), k=1)
    assert metrics["recall_at_1"] == pytest.approx(0.5)
    assert metrics["ndcg_at_1"] == pytest.approx(1.0)


def test_ties_at_the_top_k_boundary_go_to_the_lower_id() -> None:
    # a0 (1,0) is watched; a1..a60 are all (0,1), cos 0, so the top 20 are a1..a20 in id order.
    # user 0 tests a20 (rank 20) and a21 (rank 21): recall 1/2, DCG 1/log2(21).
    # user 1 tests a1 (rank 1) and a60: recall 1/2, DCG 1.
    vectors = np.tile([0.0, 1.0], (61, 1))
    vectors[0] = [1.0, 0.0]
    metrics = next_watch(vectors, make_split({0: [0], 1: [0]}, {0: [21, 20], 1: [60, 1]}, catalogue=61))
    ideal = 1 + 1 / LOG2_3
    assert metrics["recall_at_20"] == pytest.approx(0.5)
    assert metrics["ndcg_at_20"] == pytest.approx((1 / math.log2(21) + 1) / 2 / ideal)


def test_top_k_breaks_ties_by_column() -> None:
    scores = np.array([[1.0, 3.0, 3.0, 3.0, 0.0], [-np.inf, 2.0, -np.inf, 2.0, 5.0]])
    columns = np.arange(5)
    assert top_k(scores, columns, 2)[0].tolist() == [[1, 2], [4, 1]]
    assert top_k(scores, columns, 4)[0].tolist() == [[1, 2, 3, 0], [4, 1, 3, 0]]


def test_asset_without_vector_ranks_last_but_its_test_view_counts() -> None:
    # a0 (1,0) watched; a1 (0,1) cos 0; a2 NaN and a3 zero have no vector; a4 (-1,0) cos -1.
    # ranking a1 a4 a2 a3. Test {a2, a4}, ideal DCG 1 + 1/log2(3).
    # k=2: top a1 a4 -> hit a4 at rank 2: recall 1/2, NDCG (1/log2 3) / (1 + 1/log2 3).
    # k=3: top a1 a4 a2 -> hits at ranks 2, 3: recall 1, NDCG (1/log2 3 + 1/2) / (1 + 1/log2 3).
    vectors = np.array([[1, 0], [0, 1], [np.nan, np.nan], [0, 0], [-1, 0]], dtype=float)
    split = make_split({0: [0]}, {0: [2, 4]}, catalogue=5)
    at_2 = next_watch(vectors, split, k=2)
    assert at_2["recall_at_2"] == pytest.approx(0.5)
    assert at_2["ndcg_at_2"] == pytest.approx((1 / LOG2_3) / (1 + 1 / LOG2_3))
    at_3 = next_watch(vectors, split, k=3)
    assert at_3["recall_at_3"] == pytest.approx(1.0)
    assert at_3["ndcg_at_3"] == pytest.approx((1 / LOG2_3 + 0.5) / (1 + 1 / LOG2_3))


# a0 (1,0) {A}, a1 (1,1) {A,B}, a2 (0,1) {B}, a3 (-1,0) {B}, a4 no vector {A}, a5 (1,0.1) {A}.
# Train views: a0..a4 twice each (eligible at min_views 2), a5 once (not eligible, never a neighbour).
GENRE_VECTORS = np.array([[1, 0], [1, 1], [0, 1], [-1, 0], [np.nan, np.nan], [1, 0.1]], dtype=float)
GENRES = [{"A"}, {"A", "B"}, {"B"}, {"B"}, {"A"}, {"A"}]
GENRE_SPLIT = make_split({0: [0, 1, 2, 3, 4, 5], 1: [0, 1, 2, 3, 4]}, {})


def test_genre_precision_on_a_small_catalogue() -> None:
    # k=2 among the pool a0 a1 a2 a3:
    # a0: a1 .707, a2 0 -> {A}: yes, no -> 1/2
    # a1: a0 .707, a2 .707 -> yes, yes -> 1
    # a2: a1 .707, then a0 and a3 tie at 0 -> a0 -> {B}: yes, no -> 1/2
    # a3: a2 0, a1 -.707 -> yes, yes -> 1
    # a4: eligible, no vector -> 0.        Mean over 5 eligible: 3/5.
    assert genre_precision(GENRE_VECTORS, GENRE_SPLIT, GENRES, k=2, min_views=2) == pytest.approx(0.6)


def test_genre_precision_with_one_neighbour_to_spare_and_none_eligible() -> None:
    # min_views 2 with k=10: each pool asset's share is over the 3 others.
    # a0: a1 yes, a2 no, a3 no -> 1/3; a1: 1; a2: a1 yes, a0 no, a3 yes -> 2/3; a3: a2, a1 yes, a0 no -> 2/3
    # a4: 0. Mean (1/3 + 1 + 2/3 + 2/3) / 5 = 8/15.
    assert genre_precision(GENRE_VECTORS, GENRE_SPLIT, GENRES, min_views=2) == pytest.approx(8 / 15)
    assert math.isnan(genre_precision(GENRE_VECTORS, GENRE_SPLIT, GENRES, min_views=3))


def test_evaluate_names_the_three_figures() -> None:
    split = make_split({0: [0], 1: [1, 4]}, {0: [3, 1], 1: [6, 0]}, catalogue=7)
    assert set(evaluate(PLANE, split, [{"A"}] * 7)) == {"recall_at_20", "ndcg_at_20", "genre_p_at_10"}


def test_split_asset_beyond_the_vectors_is_an_error() -> None:
    with pytest.raises(ValueError, match="asset code 7"):
        next_watch(PLANE, make_split({0: [0]}, {0: [7]}))


def reference_unit(vectors: np.ndarray, asset: int) -> list[float] | None:
    row = [float(x) for x in vectors[asset]]
    if not all(math.isfinite(x) for x in row) or not any(row):
        return None
    norm = math.sqrt(sum(x * x for x in row))
    return [x / norm for x in row]


def reference_next_watch(vectors: np.ndarray, split: Split, k: int) -> dict[str, float]:
    """The protocol written as loops: sort every candidate by (has no vector, -score, id)."""
    catalogue = sorted(set(split.train_asset.tolist()) | set(split.test_asset.tolist()))
    unit = {asset: reference_unit(vectors, asset) for asset in catalogue}
    discount = 1.0 / np.log2(np.arange(k) + 2.0)
    recalls, ndcgs = [], []
    for user in sorted(set(split.test_user.tolist())):
        train = [a for u, a in zip(split.train_user, split.train_asset, strict=True) if u == user]
        test = [a for u, a in zip(split.test_user, split.test_asset, strict=True) if u == user]
        taste = [sum(unit[a][d] for a in train if unit[a]) for d in range(vectors.shape[1])]

        def rank_key(asset: int, taste: list[float] = taste) -> tuple:
            if unit[asset] is None:
                return (1, 0.0, asset)
            return (0, -sum(t * x for t, x in zip(taste, unit[asset], strict=True)), asset)

        ranked = sorted((a for a in catalogue if a not in train), key=rank_key)[:k]
        dcg = 0.0
        for position, asset in enumerate(ranked):
            dcg += discount[position] if asset in test else 0.0
        recalls.append(sum(asset in test for asset in ranked) / len(test))
        ndcgs.append(dcg / float(np.cumsum(discount)[min(len(test), k) - 1]))
    return {f"recall_at_{k}": float(np.mean(recalls)), f"ndcg_at_{k}": float(np.mean(ndcgs))}


def reference_genre_precision(
    vectors: np.ndarray, split: Split, genres: list[set[str]], k: int, min_views: int
) -> float:
    views = {}
    for asset in split.train_asset.tolist():
        views[asset] = views.get(asset, 0) + 1
    eligible = sorted(asset for asset, count in views.items() if count >= min_views)
    unit = {asset: reference_unit(vectors, asset) for asset in eligible}
    pool = [asset for asset in eligible if unit[asset]]
    shares = []
    for asset in eligible:
        others = [other for other in pool if other != asset]
        if unit[asset] is None or not others:
            shares.append(0.0)
            continue
        nearest = sorted(
            others,
            key=lambda other: (-sum(x * y for x, y in zip(unit[asset], unit[other], strict=True)), other),
        )[:k]
        shares.append(sum(bool(genres[asset] & genres[other]) for other in nearest) / len(nearest))
    return float(np.mean(shares))


def test_vectorised_protocol_matches_the_loops_exactly() -> None:
    # Vectors of ±1 in 4 dimensions all have norm 2, so unit entries are ±1/2 and every score is a multiple
    # of 1/4: exact in any summation order, and full of ties (16 distinct directions).
    rng = np.random.default_rng(7)
    n_assets = 90
    vectors = rng.choice([-1.0, 1.0], size=(n_assets, 4))
    vectors[rng.choice(n_assets, 8, replace=False)] = 0.0
    vectors[rng.choice(n_assets, 8, replace=False)] = np.nan
    views = 1_500
    user = rng.integers(0, 60, views)
    asset = rng.integers(0, 80, views)  # assets 80..89 are outside the catalogue
    viewed_at = rng.integers(0, 30, views)
    split = split_views(user, asset, viewed_at)
    genres = [set(rng.choice(["A", "B", "C", "D", "E"], rng.integers(0, 3)).tolist()) for _ in range(n_assets)]

    for k in (1, 20):
        expected = reference_next_watch(vectors, split, k)
        assert next_watch(vectors, split, k) == expected
        assert next_watch(vectors, split, k, block_cells=100) == expected
    for k, min_views in ((10, 12), (3, 5)):
        expected_share = reference_genre_precision(vectors, split, genres, k, min_views)
        assert genre_precision(vectors, split, genres, k, min_views) == expected_share
        assert genre_precision(vectors, split, genres, k, min_views, block_cells=100) == expected_share


# A factor model's own recommender (ALS's user · item factors): the same ranking with a learnt user vector.


def test_user_vectors_rank_by_raw_dot_product_excluding_train_assets() -> None:
    # user 0 (train a0) has the user vector (0, 1): raw dot with PLANE is a6 2, a1 1, a2 1, a5 1, a4 0, a3 -1;
    # a1 and a2 tie at 1 -> a1 first. top-2 a6 a1; test {a1}: hit at rank 2 -> recall 1, DCG 1/log2(3).
    # user 1 has no vector (zero row): candidates come by id, a0 a2 (a1 is its train asset); test {a2}: rank 2.
    split = make_split({0: [0], 1: [1]}, {0: [1], 1: [2]}, catalogue=7)
    users = np.array([[0.0, 1.0], [0.0, 0.0]])
    metrics = next_watch_of_user_vectors(users, PLANE, split, k=2)
    assert metrics == {"recall_at_2": 1.0, "ndcg_at_2": pytest.approx(1 / LOG2_3)}


def test_user_vectors_summing_the_train_unit_vectors_give_next_watch() -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(40, 5))
    vectors[7] = 0.0  # an asset without a vector ranks last in both
    split = split_views(rng.integers(0, 30, 600), rng.integers(0, 40, 600))
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-300)
    tastes = np.zeros((30, 5))
    np.add.at(tastes, split.train_user, unit[split.train_asset])
    by_users = next_watch_of_user_vectors(tastes, unit, split, k=10, block_cells=100)
    assert by_users == pytest.approx(next_watch(vectors, split, k=10))


def test_user_vectors_must_cover_the_test_users() -> None:
    with pytest.raises(ValueError, match="user code 1"):
        next_watch_of_user_vectors(np.ones((1, 2)), PLANE, make_split({0: [0], 1: [0]}, {1: [2]}, catalogue=7))


def test_split_keeps_each_train_views_time_and_none_without_times() -> None:
    user, asset = np.array([0, 0, 0, 0, 0, 0, 0, 1]), np.array([5, 3, 4, 2, 1, 0, 6, 0])
    viewed_at = np.array([70, 30, 40, 20, 10, 0, 60, 5])
    split = split_views(user, asset, viewed_at)
    time_of = {(u, a): t for u, a, t in zip(user, asset, viewed_at)}
    assert split.train_time.tolist() == [time_of[u, a] for u, a in zip(split.train_user, split.train_asset)]
    assert split_views(user, asset).train_time is None


def test_weighted_next_watch_ranks_by_the_weighted_taste() -> None:
    rng = np.random.default_rng(4)
    vectors = rng.normal(size=(40, 5))
    vectors[9] = 0.0
    split = split_views(rng.integers(0, 30, 600), rng.integers(0, 40, 600), rng.integers(0, 10**6, 600))
    weights = rng.uniform(0.1, 1.0, size=len(split.train_user))
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-300)
    tastes = np.zeros((30, 5))
    np.add.at(tastes, split.train_user, unit[split.train_asset] * weights[:, None])
    by_users = next_watch_of_user_vectors(tastes, unit, split, k=10, block_cells=100)
    assert next_watch(vectors, split, k=10, view_weights=weights, block_cells=100) == pytest.approx(by_users)
    ones = np.ones(len(split.train_user))
    assert next_watch(vectors, split, k=10, view_weights=ones) == pytest.approx(next_watch(vectors, split, k=10))
    with pytest.raises(ValueError, match="view_weights"):
        next_watch(vectors, split, view_weights=weights[1:])


def test_next_watch_with_a_prior_ranks_as_the_recommend_use() -> None:
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(40, 5))
    split = split_views(rng.integers(0, 30, 600), rng.integers(0, 40, 600), rng.integers(0, 10**6, 600))
    weights = rng.uniform(0.1, 1.0, size=len(split.train_user))
    prior = popularity_prior(np.bincount(split.train_asset, minlength=40), 0.3)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    summed, total = np.zeros((30, 5)), np.zeros(30)
    np.add.at(summed, split.train_user, unit[split.train_asset] * weights[:, None])
    np.add.at(total, split.train_user, weights)
    by_user = np.argsort(split.train_user, kind="stable")
    users, counts = np.unique(split.train_user, return_counts=True)
    ranked, _ = rank_candidates(summed[users] / total[users, None], unit, prior, counts, split.train_asset[by_user], 10)
    recall = [
        np.isin(split.test_asset[split.test_user == user], ranked[row]).sum() / np.sum(split.test_user == user)
        for row, user in enumerate(users)
        if np.any(split.test_user == user)
    ]
    figures = next_watch(vectors, split, k=10, view_weights=weights, prior=prior, block_cells=100)
    assert figures["recall_at_10"] == pytest.approx(np.mean(recall))
    assert figures != pytest.approx(next_watch(vectors, split, k=10, view_weights=weights))  # the prior counts


def test_weighting_the_latest_train_view_finds_the_next_watch() -> None:
    # user 0's train views: a0 (old) and a1 (latest); the test view is a3, nearest to a1, far from a0.
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.05], [0.05, 1.0]])
    split = Split(np.array([0, 0, 99, 99]), np.array([0, 1, 2, 3]), np.array([0]), np.array([3]))
    assert next_watch(vectors, split, k=1)["recall_at_1"] == 0.0  # the plain mean ties a2 and a3: a2 wins
    assert next_watch(vectors, split, k=1, view_weights=np.array([0.25, 1.0, 1.0, 1.0]))["recall_at_1"] == 1.0
