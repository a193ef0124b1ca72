"""The evaluation stage: split, train on the train part only, score, log; a missing table is named."""

from __future__ import annotations

import json
import os

import mlflow
import numpy as np
import pytest
from deltalake import DeltaTable

from film2vec import cli, tables
from film2vec.config import AppsConfig
from film2vec.errors import ExitCode
from film2vec.evaluation.stage import evaluate, split_events
from film2vec.seasons.stage import held_out_views, season_mismatch

CATALOGUE = ["--users", "400", "--catalogue-size", "120", "--genres", "4", "--views-per-user", "20"]
SMALL = [*CATALOGUE, "--seasons", "0", "--min-seasons", "2", "--max-seasons", "4", "--validation-users", "100"]
SMALL += ["--samples-per-view", "1.5", "--dim", "16"]
SMALL += ["--batch-size", "256", "--learning-rate", "0.5"]


@pytest.fixture(scope="module")
def evaluated(spark, tmp_path_factory):
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    out = str(tmp_path_factory.mktemp("evaluate"))
    config = cli.config_from(cli.parser().parse_args(["evaluate", "--out", out, *SMALL]))
    return config, evaluate(spark, config)


def test_evaluate_splits_the_events_and_trains_on_train_only(spark, evaluated):
    config, summary = evaluated
    train_views = spark.read.format("delta").load(config.out("split/train"))
    test_views = spark.read.format("delta").load(config.out("split/test"))
    all_views = spark.read.format("delta").load(config.out("synthetic/events")).select("user_id", "asset_id")
    assert train_views.count() + test_views.count() == all_views.distinct().count()
    assert test_views.count() == 5 * summary["users_evaluated"]
    learnt_from = spark.read.format("delta").load(config.out("views"))
    assert learnt_from.join(test_views, ["user_id", "asset_id"]).count() == 0  # no test view reached training
    assert learnt_from.count() == train_views.count()


def test_evaluate_trains_until_the_held_out_slice_stops_gaining_and_never_holds_out_a_test_view(spark, evaluated):
    config, summary = evaluated
    volume = summary["train"]["volume"]
    scored = len(volume["held_out_figures"])  # then one more season puts the slice back
    assert 2 <= scored <= 4 and volume["seasons"] == list(range(scored + 1))
    assert "no gain" in volume["stopped"] or "ceiling of 4" in volume["stopped"]
    seasons = DeltaTable(config.out("seasons")).to_pyarrow_table(columns=["season"]).column("season").to_numpy()
    assert volume["samples"] == seasons.size and set(np.unique(seasons)) == set(volume["seasons"])
    added_back = volume["held_out_added_back_in_season"]
    assert added_back == scored  # drawn over the season the feed drew ahead, over every view
    mismatch, _ = season_mismatch(spark, config, [added_back])
    assert "validation_users = 0 there, 100 here" in mismatch
    assert season_mismatch(spark, config, list(range(scored)))[0] is None
    views = tables.of(config, "views").read(spark)  # the train views, the events the run learnt from
    held_out = held_out_views(views, config.seasons.validation_users, config.seed).join(
        views.select("user_id", "asset_idx", "asset_id"), ["user_id", "asset_idx"]
    )
    test_views = spark.read.format("delta").load(config.out("split/test"))
    assert held_out.count() == volume["held_out_users"] == 100
    assert held_out.join(test_views, ["user_id", "asset_id"]).count() == 0
    history = mlflow.MlflowClient().get_metric_history(summary["train"]["run_id"], "held_out_ndcg_at_1000")
    assert [metric.step for metric in sorted(history, key=lambda m: m.step)] == list(range(scored))
    assert [metric.value for metric in sorted(history, key=lambda m: m.step)] == pytest.approx(
        [figures["ndcg_at_1000"] for figures in volume["held_out_figures"]]
    )


def test_evaluate_beats_random_vectors_and_logs_the_figures_to_the_run(spark, evaluated):
    config, summary = evaluated
    figures = summary["figures"]
    assert set(figures) == {"recall_at_20", "ndcg_at_20", "genre_p_at_10"}
    held_out, _ = split_events(spark, config)
    ids = held_out.asset_ids
    random_vectors = np.random.default_rng(0).normal(size=(len(ids), 16))
    chance = held_out.score(tables.embeddings_table(ids, random_vectors))
    assert figures["recall_at_20"] > chance["recall_at_20"] + 0.05
    assert figures["genre_p_at_10"] > chance["genre_p_at_10"] + 0.1
    run = mlflow.get_run(summary["train"]["run_id"])
    assert {key: run.data.metrics[key] for key in figures} == pytest.approx(figures)


def test_evaluate_scores_film2vecs_recommender_and_logs_it(spark, evaluated):
    config, summary = evaluated
    held_out, _ = split_events(spark, config)
    embeddings = spark.read.format("delta").load(config.out("embeddings")).select("asset_id", "vector").toArrow()
    recent = summary["recommend_figures"]
    assert recent == pytest.approx(held_out.score_tastes(embeddings, config.apps))
    assert config.apps.half_life_views is not None
    plain = held_out.score_tastes(embeddings, AppsConfig(half_life_views=None, popularity_prior=0.0))  # the mean
    assert plain == pytest.approx({key: summary["figures"][key] for key in ("recall_at_20", "ndcg_at_20")})
    assert recent != pytest.approx(plain)
    run = mlflow.get_run(summary["train"]["run_id"])
    assert {key: run.data.metrics[f"recommend_{key}"] for key in recent} == pytest.approx(recent)


def test_evaluate_scores_a_given_embeddings_table_and_prints_the_figures(evaluated, capsys):
    config, summary = evaluated
    argv = ["evaluate", "--out", config.data.out, "--embeddings", config.out("embeddings"), *CATALOGUE, "--json"]
    assert cli.main(argv) == 0
    printed = json.loads(capsys.readouterr().out)  # with --json, stdout is the summary and nothing else
    assert printed["figures"] == pytest.approx(summary["figures"])
    assert printed["recommend_figures"] == pytest.approx(summary["recommend_figures"])


def test_evaluate_names_a_missing_embeddings_table(evaluated, capsys):
    config, _ = evaluated
    argv = ["evaluate", "--out", config.data.out, "--embeddings", config.out("nowhere"), *CATALOGUE]
    assert cli.main(argv) == ExitCode.BAD_INPUT
    error = capsys.readouterr().err
    assert f"flag --embeddings: {config.out('nowhere')}: no such file or folder" in error
