"""Tables that know where they came from: seasons, pairs and embeddings record how they were made, and
`train` refuses seasons that another walk, other settings or older inputs drew."""

from __future__ import annotations

import copy
import os

import mlflow
import pytest

from film2vec import tables
from film2vec.config import Config
from film2vec.errors import InputError
from film2vec.pairs.stage import PAIRS_RECORD, count_pairs
from film2vec.pipeline import compacted
from film2vec.seasons.stage import SEASON_RECORD, sample, season_mismatch
from film2vec.serving.gate import EMBEDDINGS_RECORD, candidate
from film2vec.train.stage import SEASON_MISMATCH_TAG, train_vectors


@pytest.fixture(autouse=True)
def tracking_under_out():
    os.environ.pop("MLFLOW_TRACKING_URI", None)


def small_config(out: str) -> Config:
    config = Config()
    config.data.out = out
    config.synthetic.users, config.synthetic.catalogue_size, config.synthetic.views_per_user = 300, 60, 10
    config.seasons.seasons, config.seasons.samples_per_view, config.seasons.sample_partitions = 3, 0.4, 2
    config.train.dim, config.train.batch_size, config.train.device = 8, 256, "cpu"
    return config


def test_each_season_and_the_pair_table_record_how_they_were_drawn(spark, tmp_path):
    config = small_config(str(tmp_path))
    count_pairs(spark, config)
    sample(spark, config)
    views, assets = (tables.of(config, table).version(spark) for table in ("views", "assets"))
    records = {record["season"]: record for _, record in tables.of(config, "seasons").records(spark, SEASON_RECORD)}
    assert sorted(records) == [0, 1, 2]
    assert records[1]["inputs"] == {"assets": assets, "views": views}
    assert records[1]["settings"] == {
        "seed": 0,
        "walk": "bipartite",
        "samples_per_view": 0.4,
        "season_samples_per_asset": 3000.0,
        "origin_distribution": "views",
        "origin_exponent": 1.0,
        "negatives": 20,
        "context_window": 50,
    }
    pairs = tables.of(config, "pairs").records(spark, PAIRS_RECORD)[0][1]
    assert (pairs["views_version"], pairs["assets_version"]) == (views, assets)


def test_a_train_after_a_sample_of_another_walk_stops_and_says_what_differs_and_how_to_redraw(spark, tmp_path):
    config = small_config(str(tmp_path))
    count_pairs(spark, config)
    sample(spark, config)
    coview = copy.deepcopy(config)
    coview.seasons.walk, coview.seasons.seasons = "coview", 1
    assert sample(spark, coview)["removed_seasons"] == [1, 2]  # no later stage reads them by accident

    with pytest.raises(InputError) as stopped:
        train_vectors(spark, config)
    message = str(stopped.value)
    seasons = tables.of(config, "seasons").where
    assert "seasons 1–2 missing from " + seasons in message
    assert f"season 0 of {seasons}: context_window = None there, 50 here" in message  # the co-view walk has none
    assert "walk = 'coview' there, 'bipartite' here" in message
    assert f"`film2vec sample --out {tmp_path} --seasons 3 --samples-per-view 0.4`" in message
    assert not tables.of(config, "embeddings").exists(spark)  # stopped before anything was written
    config.train.allow_season_mismatch = True
    with pytest.raises(InputError, match="seasons 1–2 missing"):  # no flag trains on rows that are not there
        train_vectors(spark, config)
    config.train.allow_season_mismatch = False

    sample(spark, config)  # the command the message gives
    assert "season_mismatch" not in train_vectors(spark, config)


def test_seasons_from_older_views_stop_train_unless_allowed_and_then_the_run_records_it(spark, tmp_path):
    config = small_config(str(tmp_path))
    config.seasons.seasons = 2
    count_pairs(spark, config)
    sample(spark, config)
    # OPTIMIZE and VACUUM keep the rows: no reason to redraw
    compacted(spark, config, ("views", "pairs"), config.refresh.vacuum_retention_hours)
    assert season_mismatch(spark, config, [0, 1]) == (None, [])

    before = tables.of(config, "views").version(spark)
    count_pairs(spark, config)  # the views are written again under the seasons
    drawn_from = f"views changed since \\(version 0 there, {before + 1} now\\)"  # the compaction's versions kept it
    with pytest.raises(InputError, match=f"seasons 0–1 of .*: assets changed since .*; {drawn_from}"):
        train_vectors(spark, config)

    config.train.allow_season_mismatch = True
    trained = train_vectors(spark, config)
    assert "views changed since" in trained["season_mismatch"]
    run = mlflow.get_run(trained["run_id"])
    assert run.data.tags[SEASON_MISMATCH_TAG] == trained["season_mismatch"]
    for table in ("embeddings", "neighbours", candidate("embeddings"), candidate("neighbours")):
        record = tables.of(config, table).records(spark, EMBEDDINGS_RECORD)[0][1]
        assert record["season_mismatch"] == trained["season_mismatch"]
        assert record["seasons"] == [0, 1] and record["run_id"] == trained["run_id"]
        assert record["inputs"]["seasons"] == tables.of(config, "seasons").version(spark)
        assert record["model_version"] == int(trained["model"].rsplit("/", 1)[-1])
