"""Pair counts against a brute-force count."""

from __future__ import annotations

from collections import Counter
from itertools import permutations

import numpy as np

from film2vec.pairs import count_pairs_join, with_asset_ids


def brute_force(histories: dict[int, set[int]]) -> Counter:
    counts: Counter = Counter()
    for assets in histories.values():
        counts.update(permutations(sorted(assets), 2))
    return counts


def test_join_counts_equal_brute_force(spark):
    rng = np.random.default_rng(11)
    histories = {user: set(rng.choice(12, size=rng.integers(1, 9), replace=False).tolist()) for user in range(40)}
    histories[40] = set(range(12))  # one user watched everything
    rows = [(user, asset) for user, assets in histories.items() for asset in assets]
    views = spark.createDataFrame(rows, "user_id long, asset_idx int")
    counted = {(r.a, r.b): r.co_views for r in count_pairs_join(views).collect()}
    assert counted == dict(brute_force(histories))


def test_pairs_carry_the_catalogues_own_ids(spark):
    views = spark.createDataFrame(
        [("u1", 0), ("u1", 1), ("u2", 0), ("u2", 1), ("u2", 2)], "user_id string, asset_idx int"
    )
    assets = spark.createDataFrame([(0, "tt-a"), (1, "tt-b"), (2, "tt-c")], "asset_idx int, asset_id string")
    pairs = with_asset_ids(count_pairs_join(views), assets)
    assert pairs.schema["asset_a"].dataType.simpleString() == "string"
    assert pairs.schema["co_views"].dataType.simpleString() == "bigint"
    assert {(r.asset_a, r.asset_b, r.co_views) for r in pairs.collect()} == {
        ("tt-a", "tt-b", 2),
        ("tt-b", "tt-a", 2),
        ("tt-a", "tt-c", 1),
        ("tt-c", "tt-a", 1),
        ("tt-b", "tt-c", 1),
        ("tt-c", "tt-b", 1),
    }
