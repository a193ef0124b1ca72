"""End to end on the synthetic default: planted genres recovered, the registered model served back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from deltalake import DeltaTable

from film2vec import cli, pipeline
from film2vec.config import Config
from film2vec.errors import ExitCode
from film2vec.serving.nearest import normalised, top_neighbours


@pytest.fixture(scope="module")
def finished_run(spark, tmp_path_factory):
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    config = Config()
    config.data.out = str(tmp_path_factory.mktemp("run"))
    # every asset's own genre recoverable at this volume: one genre each, all out before the first view, a short tail
    config.synthetic.multi_genre_share, config.synthetic.back_catalogue_share = 0.0, 1.0
    config.synthetic.popularity_exponent = 1.0
    config.seasons.seasons, config.seasons.samples_per_view = 3, 1.5  # a 20th of the default's volume does here
    config.tracking.ann_from_assets = 500  # the large catalogue's path: an HNSW index in the table and the model
    summary = pipeline.run(spark, config)
    return config, summary


def embeddings(config: Config):
    table = DeltaTable(config.out("embeddings")).to_pyarrow_table()
    return table.column("asset_id").to_numpy(), np.stack(table.column("vector").to_numpy(zero_copy_only=False))


def test_neighbours_share_the_planted_genre(finished_run):
    config, summary = finished_run
    asset_ids, vectors = embeddings(config)
    assets = DeltaTable(config.out("assets")).to_pyarrow_table().to_pandas().set_index("asset_id")
    genre = np.array([assets.genres[a][0] for a in asset_ids])
    order, _ = top_neighbours(normalised(vectors), np.arange(len(asset_ids)), 10)
    assert (genre[order] == genre[:, None]).mean() >= 0.9  # random vectors: about 1 / 10 genres
    assert summary["train"]["assets_with_vectors"] == len(asset_ids) == config.synthetic.catalogue_size


def test_every_table_is_written(finished_run):
    config, summary = finished_run
    for table in (
        "synthetic/events",
        "synthetic/assets",
        "views",
        "assets",
        "rejects",
        "seasons",
        "embeddings",
    ):
        assert DeltaTable(config.out(table)).version() >= 0  # raises when the table is missing
    assert not Path(config.out("pairs")).exists()  # the bipartite walk reads the views; `film2vec pairs` counts them
    seasons = DeltaTable(config.out("seasons")).to_pyarrow_table(columns=["season"])
    assert sorted(set(seasons.column("season").to_pylist())) == [0, 1, 2]
    assert summary["inputs"]["ingest"]["rejected"] == 0
    assert summary["inputs"]["pairs"].startswith("not counted")  # the bipartite walk does not read them
    assert "mlflow ui --backend-store-uri sqlite:///" in summary["train"]["mlflow_ui"]


def test_registered_model_loads_in_a_fresh_process_and_agrees(finished_run):
    config, summary = finished_run
    asset_ids, vectors = embeddings(config)
    queried = asset_ids[:5].tolist()
    script = (
        "import json, sys, mlflow, pandas as pd\n"
        f"model = mlflow.pyfunc.load_model('models:/{config.tracking.model_name}@{config.tracking.alias}')\n"
        f"out = model.predict(pd.DataFrame({{'asset_id': {queried!r} + [-1]}}), params={{'k': 10}})\n"
        "matrix = model.unwrap_python_model().unit\n"
        "print(json.dumps({'neighbours': out.neighbours.tolist(), 'known': out.known.tolist(), "
        "'matrix': str(matrix.dtype)}, default=int))\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{config.out('mlflow.db')}"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    table = (
        DeltaTable(config.out("neighbours"))
        .to_pyarrow_table()
        .sort_by([("asset_id", "ascending"), ("rank", "ascending")])
    )
    in_table = np.reshape(table.column("neighbour_id").to_numpy(), (-1, 10))
    assert (
        served["neighbours"][:5]
        == in_table[np.searchsorted(table.column("asset_id").to_numpy()[::10], queried)].tolist()
    )
    assert served["known"] == [True] * 5 + [False] and served["neighbours"][5] == []
    # the index the model and the table search finds the exact neighbours (recall@10 against brute force)
    order, _ = top_neighbours(normalised(vectors), np.arange(len(asset_ids)), 10)
    assert np.mean([len(set(a) & set(b)) for a, b in zip(in_table, asset_ids[order])]) / 10 >= 0.99
    assert summary["train"]["neighbour_search"].startswith("approximate")
    assert served["matrix"] == "float32"  # kept as trained: half the memory of float64


def test_run_logs_how_long_training_waited_for_each_pipelined_season(finished_run):
    config, summary = finished_run
    client = mlflow.MlflowClient(f"sqlite:///{config.out('mlflow.db')}")
    waits = client.get_metric_history(summary["train"]["run_id"], "waited_for_samples_seconds")
    assert sorted(metric.step for metric in waits) == [0, 1, 2] and all(metric.value >= 0 for metric in waits)
    assert summary["train"]["waited_for_samples_seconds"] == pytest.approx(sum(m.value for m in waits), abs=0.1)
    # origins ∝ views: each asset's count is a Poisson draw with mean samples_per_view · its views, so a season's
    # total is Poisson around samples_per_view per view (every synthetic user walks: each has 2 views or more)
    # (three equal seasons at worst: var 3·mean)
    expected = 3 * summary["inputs"]["ingest"]["views"] * config.seasons.samples_per_view
    assert abs(summary["sample"]["samples"] - expected) <= 5 * (3 * expected) ** 0.5


def test_train_refuses_a_view_floor_no_asset_reaches_before_it_trains(finished_run, capsys):
    """--min-views above every asset's viewers would publish no vector: a clear stop, the served version kept."""
    config, _ = finished_run
    served = DeltaTable(config.out("embeddings")).version()
    code = cli.main(["train", "--out", config.data.out, "--seasons", "3", "--min-views", "1000000"])
    assert code == ExitCode.BAD_INPUT
    assert "flag --min-views 1000000: no asset has that many viewers (the most viewed has" in capsys.readouterr().err
    assert DeltaTable(config.out("embeddings")).version() == served
