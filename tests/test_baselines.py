"""The ALS baseline: Spark MLlib implicit ALS on the protocol's split, scored by the protocol's own code."""

from __future__ import annotations

import json
import os

import mlflow
import numpy as np
import pytest

from benchmarks.race_als import als_vectors
from film2vec import cli, tables
from film2vec.config import EvaluateConfig
from film2vec.evaluation.baselines import fit_als, index_users
from film2vec.evaluation.stage import als_baseline, split_events

SMALL = ["--users", "300", "--catalogue-size", "60", "--genres", "4", "--views-per-user", "12", "--dim", "8"]
# 60 assets carry the planted tastes only without the realistic defaults: one genre each (a low chance of sharing
# one), all out before the first view (all viewed), genres of equal size, a short tail, tastes that do not drift
SMALL += ["--multi-genre-share", "0", "--back-catalogue-share", "1", "--genre-exponent", "0"]
SMALL += ["--popularity-exponent", "1", "--taste-drift", "0"]


@pytest.fixture(scope="module")
def als_on_split(spark, tmp_path_factory):
    """The split of a small synthetic catalogue and the ALS baseline's summary on it (no film2vec training)."""
    out = str(tmp_path_factory.mktemp("als"))
    config = cli.config_from(cli.parser().parse_args(["evaluate", "--out", out, *SMALL]))
    held_out, _ = split_events(spark, config)
    return config, held_out, als_baseline(spark, config, held_out)


def test_als_figures_are_the_protocols_figures_of_its_item_factors(spark, als_on_split):
    config, held_out, baseline = als_on_split
    assert baseline["method"] == "als" and baseline["settings"]["rank"] == 8
    assert set(baseline["figures"]) == {"recall_at_20", "ndcg_at_20", "genre_p_at_10"}
    assert set(baseline["recommend_figures"]) == {"recall_at_20", "ndcg_at_20"}
    item_factors = spark.read.format("delta").load(baseline["embeddings"]).toArrow()
    assert np.stack(item_factors.column("vector").to_numpy(zero_copy_only=False)).shape[1] == 8
    assert held_out.score(item_factors) == baseline["figures"]  # exactly: one scoring code for every model


def test_als_recovers_planted_genres_and_next_watch_better_than_chance(als_on_split):
    _, held_out, baseline = als_on_split
    random_vectors = np.random.default_rng(0).normal(size=(len(held_out.asset_ids), 8))
    chance = held_out.score(tables.embeddings_table(held_out.asset_ids, random_vectors))
    assert baseline["figures"]["genre_p_at_10"] > chance["genre_p_at_10"] + 0.3
    assert baseline["figures"]["recall_at_20"] > chance["recall_at_20"] + 0.05
    assert baseline["recommend_figures"]["recall_at_20"] > chance["recall_at_20"] + 0.05


def test_fit_als_indexes_users_densely_and_leaves_unseen_assets_without_a_vector(spark):
    views = spark.createDataFrame(
        [("u9", 0), ("u9", 1), ("a1", 1), ("a1", 3), ("k5", 0), ("k5", 3)], "user_id string, asset_idx int"
    )
    indexed = index_users(views)
    assert sorted({(row.user_id, row.user_idx) for row in indexed.collect()}) == [("a1", 0), ("k5", 1), ("u9", 2)]
    factors = fit_als(indexed, 4, EvaluateConfig(als_iterations=3), seed=0)
    assert sorted(factors.users.tolist()) == [0, 1, 2] and sorted(factors.assets.tolist()) == [0, 1, 3]
    assets = factors.asset_matrix(5)
    assert assets.shape == (5, 4) and not assets[[2, 4]].any() and assets[[0, 1, 3]].any(axis=1).all()


def test_als_vectors_fit_every_view_and_write_item_factors_evaluate_can_score(spark, als_on_split):
    config, held_out, _ = als_on_split
    every_view = cli.config_from(
        cli.parser().parse_args(
            ["evaluate", "--out", config.data.out, "--events", config.out("synthetic/events"), *SMALL]
        )
    )
    summary = als_vectors(spark, every_view)
    assert summary["assets_with_vectors"] == len(held_out.asset_ids) == 60
    assert summary["users_with_vectors"] == 300
    item_factors = spark.read.format("delta").load(summary["embeddings"]).toArrow()
    assert sorted(item_factors.column("asset_id").to_pylist()) == sorted(held_out.asset_ids.to_pylist())
    assert held_out.score(item_factors)["genre_p_at_10"] > 0.6  # planted genres: chance is about 0.25


def test_a_baseline_that_is_not_there_is_refused_before_spark_starts(capsys):
    assert cli.main(["evaluate", "--baseline", "lightfm"]) == 2
    assert "one of als" in capsys.readouterr().err


def test_evaluate_with_baseline_als_prints_both_and_logs_als_to_the_run(als_on_split, capsys, tmp_path):
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    config, _, _ = als_on_split  # its --out: the synthetic catalogue is there already
    trainer = ["--seasons", "1", "--samples-per-view", "0.8", "--batch-size", "256", "--learning-rate", "0.5"]
    argv = ["evaluate", "--out", config.data.out, "--baseline", "als", "--als-iterations", "5", *SMALL, *trainer]
    assert cli.main([*argv, "--summary", str(tmp_path / "summary.json")]) == 0
    lines = capsys.readouterr().out.splitlines()  # the result for people: the figures side by side
    summary = json.loads((tmp_path / "summary.json").read_text())  # and the whole summary in the file
    figures = "   ".join(f"{name} {value:.4f}" for name, value in summary["figures"].items())
    assert f"{'figures':<12} {figures}" in lines
    baseline = summary["baseline"]
    assert baseline["method"] == "als" and baseline["settings"]["iterations"] == 5
    assert baseline["seconds"] > 0 and summary["film2vec_seconds"] > 0
    assert any(line.startswith("als item factors") for line in lines)
    assert any(line.startswith("film2vec recommend()") for line in lines)
    metrics = mlflow.get_run(summary["train"]["run_id"]).data.metrics
    assert {key: metrics[f"als_{key}"] for key in baseline["figures"]} == pytest.approx(baseline["figures"])
    assert metrics["als_recommend_recall_at_20"] == pytest.approx(baseline["recommend_figures"]["recall_at_20"])
    assert {key: metrics[key] for key in summary["figures"]} == pytest.approx(summary["figures"])
