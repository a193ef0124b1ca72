"""The Spark season sampler: frequencies, negatives, reruns and per-season replacement on Delta."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from film2vec.config import SeasonsConfig
from film2vec.seasons import neighbour_lists, sample_season, write_season

EDGES = {("a", "b"): 1, ("a", "c"): 4, ("a", "d"): 10, ("b", "c"): 2, ("c", "d"): 3, ("d", "e"): 1}


@pytest.fixture(scope="module")
def graph(spark):
    rows = [(a, b, w) for (a, b), w in EDGES.items()] + [(b, a, w) for (a, b), w in EDGES.items()]
    pairs = spark.createDataFrame(rows, "asset_a string, asset_b string, co_views long")
    assets = spark.createDataFrame([(i, name) for i, name in enumerate("abcdef")], "asset_idx int, asset_id string")
    return pairs, assets


def season_rows(spark, path, season):
    frame = spark.read.format("delta").load(path).where(f"season = {season}")
    return sorted((r.origin, r.target, tuple(r.negatives)) for r in frame.collect())


def test_targets_match_co_views_and_negatives_avoid_both_ends(spark, graph, tmp_path):
    config = SeasonsConfig(origins_per_asset=4000, negatives=3, sample_partitions=3)
    neighbours = neighbour_lists(*graph, config.sample_partitions)
    path = str(tmp_path / "seasons")
    write_season(sample_season(neighbours, 0, 42, 6, config), path, 0)
    rows = season_rows(spark, path, 0)
    assert len(rows) == 5 * 4000  # assets a..e have neighbours, f has none
    from_a = np.array([target for origin, target, _ in rows if origin == 0])
    observed = np.bincount(from_a, minlength=4)[1:4]
    weights = np.array([EDGES["a", "b"], EDGES["a", "c"], EDGES["a", "d"]])
    assert stats.chisquare(observed, weights / weights.sum() * len(from_a)).pvalue > 0.001
    assert all(origin not in negatives and target not in negatives for origin, target, negatives in rows)
    assert all(len(negatives) == 3 and max(negatives) <= 5 for _, _, negatives in rows)


def test_rerun_is_identical_and_replaces_only_its_season(spark, graph, tmp_path):
    config = SeasonsConfig(origins_per_asset=50, negatives=2, sample_partitions=2)
    path = str(tmp_path / "seasons")
    neighbours = neighbour_lists(*graph, config.sample_partitions)
    for season in (0, 1):
        write_season(sample_season(neighbours, season, 7, 6, config), path, season)
    first, second = season_rows(spark, path, 0), season_rows(spark, path, 1)
    assert first != second

    regrouped = neighbour_lists(*graph, 5)  # other partitioning, same samples
    write_season(sample_season(regrouped, 0, 7, 6, config), path, 0)
    assert season_rows(spark, path, 0) == first
    assert season_rows(spark, path, 1) == second
    assert spark.read.format("delta").load(path).count() == 2 * 5 * 50
