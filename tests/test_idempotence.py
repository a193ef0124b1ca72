"""The same seed and config give identical Delta tables and, on the CPU, identical embeddings, on any partitioning."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from film2vec.config import Config, TrainConfig
from film2vec.pairs.stage import count_pairs
from film2vec.seasons.stage import sample
from film2vec.seasons.walks import Negatives
from film2vec.train.stage import train_vectors
from film2vec.train.stream import read_season
from film2vec.train.trainer import train


def small_run(spark, out: str) -> Config:
    """Pairs, two seasons and training of a small synthetic catalogue under `out`."""
    config = Config()
    config.data.out = out
    config.synthetic.users, config.synthetic.catalogue_size, config.synthetic.views_per_user = 400, 80, 12
    config.seasons.seasons, config.seasons.samples_per_view, config.seasons.sample_partitions = 2, 0.5, 3
    config.train.dim, config.train.epochs_per_season, config.train.batch_size = 8, 2, 256
    config.train.device, config.train.shuffle_buffer = "cpu", 2_000  # several buffers per season
    count_pairs(spark, config)
    sample(spark, config)
    train_vectors(spark, config)
    return config


def rows(config: Config, table: str) -> list[tuple]:
    """The table's rows, sorted (a table's row order is not part of its contents)."""
    found = DeltaTable(config.out(table)).to_pyarrow_table().to_pylist()
    return sorted(tuple(str(value) for value in row.values()) for row in found)


def test_same_seed_and_config_give_identical_tables_and_embeddings(spark, tmp_path):
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    first = small_run(spark, str(tmp_path / "first"))
    second = small_run(spark, str(tmp_path / "second"))
    for table in ("views", "assets", "pairs", "seasons"):
        assert rows(first, table) == rows(second, table), table
    vectors = [DeltaTable(run.out("embeddings")).to_pyarrow_table().sort_by("asset_id") for run in (first, second)]
    assert vectors[0].column("asset_id").equals(vectors[1].column("asset_id"))
    first_vectors, second_vectors = (np.stack(v.column("vector").to_numpy(zero_copy_only=False)) for v in vectors)
    assert np.array_equal(first_vectors, second_vectors)  # bit for bit, not approximately


COALESCE = "spark.sql.adaptive.coalescePartitions.enabled"
DRAW_IN_ANOTHER_PROCESS = """
import json, sys
from film2vec.seasons.stage import sample
from film2vec.config import Config, apply
from film2vec.spark import get_spark

config = apply(Config(), json.loads(sys.argv[1]), "the test's settings")
sample(get_spark(config.spark), config)
"""


def season_stream(config: Config, season: int) -> pa.Table:
    """The season's rows in the order the trainer reads them."""
    return pa.Table.from_batches(list(read_season(config.out("seasons"), season)))


@pytest.mark.parametrize("walk", ["bipartite", "coview"])
def test_a_season_is_the_same_rows_in_the_same_order_on_any_partitioning_and_trains_the_same_vectors(
    spark, tmp_path, walk
):
    """Shuffle partitions, sample partitions and local[1] against local[2] change how the rows are split into
    files, never which rows a season has, their order, or the vectors trained on them."""
    source = Config()
    source.data.out = str(tmp_path / "source")
    source.synthetic.users, source.synthetic.catalogue_size, source.synthetic.views_per_user = 400, 80, 12
    count_pairs(spark, source)
    settings = {"seasons": 2, "samples_per_view": 0.7, "walk": walk, "sampler": "spark"}  # the driver writes one file
    variants = {"local[2], shuffle 2, sample 3": (2, 3), "local[2], shuffle 7, sample 5": (7, 5)}
    if walk == "bipartite":
        variants["local[1], shuffle 1, sample 1"] = (1, 1)
    drawn = {}
    for name, (shuffle, partitions) in variants.items():
        config = copy.deepcopy(source)
        config.data.out = str(tmp_path / f"{shuffle}-{partitions}")
        for table in ("views", "assets", "pairs"):
            shutil.copytree(source.out(table), config.out(table))  # the same Delta versions too
        config.seasons = dataclasses.replace(config.seasons, **settings, sample_partitions=partitions)
        if name.startswith("local[1]"):
            given = {
                "data": {"out": config.data.out},
                "spark": {"master": "local[1]", "shuffle_partitions": shuffle},
                "seasons": {**settings, "sample_partitions": partitions},
            }
            subprocess.run([sys.executable, "-c", DRAW_IN_ANOTHER_PROCESS, json.dumps(given)], check=True)
        else:
            spark.conf.set("spark.sql.shuffle.partitions", str(shuffle))
            spark.conf.set(COALESCE, "false")  # small data would otherwise end in one partition whatever the settings
            try:
                sample(spark, config)
            finally:
                spark.conf.set("spark.sql.shuffle.partitions", "2")
                spark.conf.unset(COALESCE)
        drawn[name] = config
    files = {name: len(list(Path(config.out("seasons")).glob("season=0/*.parquet"))) for name, config in drawn.items()}
    assert len(set(files.values())) > 1, files  # the rows were split differently

    first, *others = drawn.values()
    train_config = TrainConfig(dim=8, batch_size=128, shuffle_buffer=1_500, device="cpu")
    n_assets = source.synthetic.catalogue_size
    negatives = Negatives(first.seasons.negatives, n_assets)  # uniform, as the sampler's settings say
    expected = train(first.out("seasons"), [0, 1], n_assets, train_config, seed=5, negatives=negatives).vectors
    for config in others:
        for season in (0, 1):
            assert season_stream(config, season).equals(season_stream(first, season)), (config.data.out, season)
        vectors = train(config.out("seasons"), [0, 1], n_assets, train_config, seed=5, negatives=negatives).vectors
        assert np.array_equal(vectors, expected)  # bit for bit
