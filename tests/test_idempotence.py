"""The same seed and config give identical Delta tables and, on the CPU, identical embeddings."""

from __future__ import annotations

import os

import numpy as np
from deltalake import DeltaTable

from film2vec import pipeline
from film2vec.config import Config


def small_run(spark, out: str) -> Config:
    """Pairs, two seasons and training of a small synthetic catalogue under `out`."""
    config = Config()
    config.data.out = out
    config.synthetic.users, config.synthetic.catalogue_size, config.synthetic.views_per_user = 400, 80, 12
    config.seasons.seasons, config.seasons.origins_per_asset, config.seasons.sample_partitions = 2, 30, 3
    config.train.dim, config.train.epochs_per_season, config.train.batch_size = 8, 2, 256
    config.train.device, config.train.shuffle_buffer = "cpu", 2_000  # several buffers per season
    pipeline.count_pairs(spark, config)
    pipeline.sample(spark, config)
    pipeline.train_vectors(spark, config)
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
