"""Pair counts: the gram kernel and both Spark methods against brute force; cap, sparsification, budget."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from itertools import permutations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from film2vec.errors import InputError
from film2vec.pairs import stage as pairs_stage
from film2vec.pairs.stage import (
    bucket_gram,
    bucket_increment,
    cap_views,
    check_budget,
    estimate_pairs,
    pairs_by_gram,
    pairs_by_join,
    sparsify,
)

NEEDS_CC = pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler")
MOVIELENS = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-latest-small" / "ratings.csv"


def brute_force(histories: dict, weighted: bool = False) -> Counter:
    counts: Counter = Counter()
    for assets in histories.values():
        weight = 1 / (len(assets) - 1) if weighted and len(assets) > 1 else 1
        for pair in permutations(sorted(assets), 2):
            counts[pair] += weight
    return counts


def random_histories(seed: int, users: int = 40, assets: int = 12) -> dict[int, set[int]]:
    """Random histories plus a user with one view and a user who watched every asset."""
    rng = np.random.default_rng(seed)
    histories = {u: set(rng.choice(assets, size=rng.integers(1, 9), replace=False).tolist()) for u in range(users)}
    histories[users] = {3}
    histories[users + 1] = set(range(assets))
    return histories


def view_rows(histories: dict) -> list[tuple]:
    """(user, asset id, asset_idx) rows with every user's first view repeated: duplicates count once."""
    rows = [(f"u{user}", f"tt{asset}", asset) for user, assets in histories.items() for asset in sorted(assets)]
    return rows + [(f"u{user}", f"tt{min(assets)}", min(assets)) for user, assets in histories.items()]


@pytest.fixture(params=[pytest.param("c", marks=NEEDS_CC), "scipy"])
def kernel(request, monkeypatch):
    """Each bucket kernel: the C one, streaming through a buffer of one catalogue row (12 pairs), so that every
    bucket needs several calls; and scipy's products, as where no C compiler is found."""
    if request.param == "c":
        assert pairs_stage.pair_kernel() is not None
        monkeypatch.setattr(pairs_stage, "OUTPUT_BATCH_ROWS", 1)
    else:
        monkeypatch.setattr(pairs_stage, "pair_kernel", lambda: None)
    return request.param


def bucket_rows(chunks, bucket: int, buckets: int) -> dict:
    """{(a, b): value} of a bucket's chunks, checking that each row is in the bucket."""
    counted: dict = {}
    for a, b, values in chunks:
        assert np.all(a % buckets == bucket)
        counted.update(zip(zip(a.tolist(), b.tolist()), values.tolist()))
    return counted


@pytest.mark.parametrize(("buckets", "block_pairs"), [(1, 1_000_000), (3, 1_000_000), (4, 7)])
@pytest.mark.parametrize("weighted", [False, True])
def test_bucket_gram_rows_add_up_to_brute_force(kernel, buckets, block_pairs, weighted):
    histories = random_histories(3)
    users = sorted(histories)
    lists = [sorted(histories[u]) + [min(histories[u])] for u in users]  # a duplicate view per user
    offsets = np.concatenate(([0], np.cumsum([len(assets) for assets in lists])))
    flat = np.concatenate(lists)
    counted: dict = {}
    for bucket in range(buckets):
        chunks = list(bucket_gram(offsets, flat, bucket, buckets, 12, weighted, block_pairs))
        assert all(values.dtype == (np.float64 if weighted else np.int64) for _, _, values in chunks)
        assert kernel == "scipy" or buckets > 1 or len(chunks) > 1  # the C kernel resumed between rows
        found = bucket_rows(chunks, bucket, buckets)
        assert sum(len(a) for a, _, _ in chunks) == len(found)  # no pair twice
        counted.update(found)
    expected = brute_force(histories, weighted)
    assert counted.keys() == expected.keys()
    assert [counted[k] for k in expected] == pytest.approx([expected[k] for k in expected], rel=1e-12)


@pytest.mark.parametrize(("buckets", "block_pairs"), [(1, 1_000_000), (3, 1_000_000), (4, 7)])
@pytest.mark.parametrize("index_type", [np.int32, np.int64])  # int32: as a Spark task hands them over
def test_bucket_increment_is_the_recount_of_all_views_minus_that_of_the_earlier_ones(
    kernel, buckets, block_pairs, index_type
):
    rng = np.random.default_rng(5)
    histories = random_histories(7, assets=10)  # assets 10 and 11 below are only ever new
    earlier = {u: {a for a in assets if rng.random() < 0.6} for u, assets in histories.items()}
    earlier[100], histories[100] = set(), {11}  # a user whose only view is new
    earlier[101], histories[101] = {4}, {4, 10}  # one earlier view, one new view of a new asset
    earlier[102], histories[102] = {2, 5}, {2, 5}  # nothing new: adds nothing
    users = sorted(histories)
    lists = [sorted(histories[u], reverse=True) for u in users]  # unsorted histories are sorted in place
    offsets = np.concatenate(([0], np.cumsum([len(assets) for assets in lists]))).astype(index_type)
    flat = np.concatenate(lists).astype(index_type)
    new = np.array([a not in earlier[u] for u, assets in zip(users, lists) for a in assets])
    counted: dict = {}
    for bucket in range(buckets):
        chunks = list(bucket_increment(offsets, flat, new, bucket, buckets, 12, block_pairs))
        assert all(values.dtype == np.int64 for _, _, values in chunks)
        found = bucket_rows(chunks, bucket, buckets)
        assert sum(len(a) for a, _, _ in chunks) == len(found)
        counted.update(found)
    expected = brute_force(histories)
    expected.subtract(brute_force(earlier))
    assert counted == {pair: count for pair, count in expected.items() if count}
    assert any(10 in pair for pair in counted)  # the new asset pairs with user 101's earlier view
    assert not any(11 in pair for pair in counted)  # a lone view pairs with nothing


def pair_set(pairs) -> dict:
    return {(r.asset_a, r.asset_b): r.co_views for r in pairs.collect()}


@pytest.fixture(scope="module")
def random_views(spark):
    histories = random_histories(11)
    views = spark.createDataFrame(view_rows(histories), "user_id string, asset_id string, asset_idx int")
    assets = spark.createDataFrame([(i, f"tt{i}") for i in range(12)], "asset_idx int, asset_id string")
    return histories, views, assets


def test_gram_equals_join_equals_brute_force(random_views):
    histories, views, assets = random_views
    expected = {(f"tt{a}", f"tt{b}"): n for (a, b), n in brute_force(histories).items()}
    gram = pairs_by_gram(views, assets, buckets=3)
    join = pairs_by_join(views, assets)
    for pairs in (gram, join):
        assert pairs.schema["asset_a"].dataType.simpleString() == "string"
        assert pairs.schema["co_views"].dataType.simpleString() == "bigint"
    assert pair_set(gram) == pair_set(join) == expected


def test_weighted_counts_are_doubles_summing_one_over_n_minus_one(random_views):
    histories, views, assets = random_views
    expected = {(f"tt{a}", f"tt{b}"): w for (a, b), w in brute_force(histories, weighted=True).items()}
    gram, join = pairs_by_gram(views, assets, 2, weighted=True), pairs_by_join(views, assets, weighted=True)
    assert gram.schema["co_views"].dataType.simpleString() == "double"
    for counted in (pair_set(gram), pair_set(join)):
        assert counted.keys() == expected.keys()
        assert [counted[k] for k in expected] == pytest.approx([expected[k] for k in expected], rel=1e-12)


@pytest.mark.skipif(not MOVIELENS.is_file(), reason="MovieLens latest-small not present")
def test_gram_equals_join_on_movielens(spark):
    ratings = pd.read_csv(MOVIELENS, usecols=["userId", "movieId"])
    ratings = ratings[ratings["userId"] <= 120]  # about a fifth of the users: the join stays quick
    catalogue, asset_idx = np.unique(ratings["movieId"], return_inverse=True)
    frame = pd.DataFrame({"user_id": ratings["userId"], "asset_id": ratings["movieId"], "asset_idx": asset_idx})
    views = spark.createDataFrame(frame)
    assets = spark.createDataFrame(pd.DataFrame({"asset_idx": np.arange(len(catalogue)), "asset_id": catalogue}))
    gram = pairs_by_gram(views, assets, buckets=4)
    join = pairs_by_join(views, assets)
    assert gram.schema["asset_a"].dataType.simpleString() == "bigint"
    assert gram.exceptAll(join).count() == 0 and join.exceptAll(gram).count() == 0
    assert gram.count() > 1_000_000


def test_cap_keeps_a_seeded_uniform_sample_of_heavy_histories(spark):
    rows = [(user, f"tt{a}", a) for user, n in (("light", 3), ("heavy", 10)) for a in range(n)]
    views = spark.createDataFrame(rows, "user_id string, asset_id string, asset_idx int")

    def kept(seed: int) -> dict[str, set[int]]:
        found: dict = {}
        for r in cap_views(views, 4, seed).collect():
            found.setdefault(r.user_id, set()).add(r.asset_idx)
        return found

    first = kept(0)
    assert first["light"] == {0, 1, 2} and len(first["heavy"]) == 4 and first["heavy"] <= set(range(10))
    assert kept(0) == first
    samples = [frozenset(kept(seed)["heavy"]) for seed in range(8)]
    assert len(set(samples)) > 4  # other seeds, other samples
    every_asset = Counter(a for sample in samples for a in sample)
    assert set(every_asset) == set(range(10))


def test_sparsify_keeps_top_k_neighbours_then_minimum(spark):
    rows = [("a", "b", 5), ("a", "c", 3), ("a", "d", 3), ("a", "e", 1), ("b", "a", 5), ("c", "a", 3), ("e", "a", 1)]
    pairs = spark.createDataFrame(rows, "asset_a string, asset_b string, co_views long")
    top_two = {(r.asset_a, r.asset_b) for r in sparsify(pairs, 2, 0).collect()}
    assert top_two == {("a", "b"), ("a", "c"), ("b", "a"), ("c", "a"), ("e", "a")}  # tie c/d: c by id
    at_least_three = {(r.asset_a, r.asset_b) for r in sparsify(pairs, 0, 3).collect()}
    assert at_least_three == {("a", "b"), ("a", "c"), ("a", "d"), ("b", "a"), ("c", "a")}


def test_budget_estimate_and_stop(spark):
    histories = {"heavy": range(50), "mid": range(10), "light": range(3), "single": range(1)}
    rows = [(user, f"tt{a}", a) for user, assets in histories.items() for a in assets]
    views = spark.createDataFrame(rows, "user_id string, asset_id string, asset_idx int")
    estimate = estimate_pairs(views)
    assert (estimate.users, estimate.views, estimate.n_assets) == (4, 64, 50)
    assert estimate.raw_pairs == 50 * 49 // 2 + 10 * 9 // 2 + 3
    assert estimate.max_rows == min(2 * estimate.raw_pairs, 50 * 49)
    assert estimate.largest_cap_within(45 + 45 + 3) == 10  # heavy and mid at 10: 45 + 45 + 3
    assert estimate.largest_cap_within(45 + 45 + 2) == 9
    check_budget(estimate, estimate.raw_pairs, views, "views")
    check_budget(estimate, 0, views, "views")
    with pytest.raises(InputError, match=r"heavy \(50 views\), mid \(10 views\).*--max-user-views 10"):
        check_budget(estimate, 100, views, "DIR/views")
