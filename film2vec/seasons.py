"""Seasons of samples: the walk kernels of film2vec.walks run per partition over neighbour lists.

Each season is a fresh training set: for every asset with neighbours, `origins_per_asset` samples of
(origin, target, negatives) as dense asset indices (see the assets table). Rows are a pure function of
(seed, season, origin), so rerunning a season rewrites identical rows, and writing it replaces exactly
that season's partition of the Delta table in one commit.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from film2vec.config import SeasonsConfig
from film2vec.walks import sample_coview_season, stream_key

SAMPLE_SCHEMA = "season int, origin int, target int, negatives array<int>"


def neighbour_lists(pairs: DataFrame, assets: DataFrame, partitions: int) -> DataFrame:
    """One row per origin index: its neighbours' indices and co_views, in neighbour order."""
    ids = assets.select("asset_idx", "asset_id")
    indexed = (
        pairs.join(ids.withColumnRenamed("asset_id", "asset_a"), "asset_a")
        .withColumnRenamed("asset_idx", "origin")
        .join(ids.withColumnRenamed("asset_id", "asset_b"), "asset_b")
        .select("origin", F.struct(F.col("asset_idx").alias("neighbour"), "co_views").alias("edge"))
    )
    edges = F.array_sort(F.collect_list("edge"))
    return (
        indexed.groupBy("origin")
        .agg(edges.alias("edges"))
        .select("origin", F.col("edges.neighbour").alias("neighbours"), F.col("edges.co_views").alias("co_views"))
        .repartition(partitions, "origin")
    )


def _season_sampler(season: int, seed: int, n_assets: int, config: SeasonsConfig):
    """The mapInArrow function for one season: neighbour-list batches in, sample batches out."""
    key = stream_key(seed, season)
    draws, negatives = config.origins_per_asset, config.negatives

    def sample(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            lists = batch.column("neighbours")
            offsets = lists.offsets.to_numpy() - lists.offsets[0].as_py()
            origin, target, negative = sample_coview_season(
                key,
                batch.column("origin").to_numpy().astype(np.int64),
                offsets,
                lists.flatten().to_numpy().astype(np.int64),
                batch.column("co_views").flatten().to_numpy().astype(np.int64),
                draws,
                n_assets,
                negatives,
            )
            flat = pa.array(negative.astype(np.int32).ravel())
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(np.full(len(origin), season, dtype=np.int32)),
                    pa.array(origin.astype(np.int32)),
                    pa.array(target.astype(np.int32)),
                    pa.ListArray.from_arrays(pa.array(np.arange(0, len(flat) + 1, negatives, dtype=np.int32)), flat),
                ],
                names=["season", "origin", "target", "negatives"],
            )

    return sample


def sample_season(neighbours: DataFrame, season: int, seed: int, n_assets: int, config: SeasonsConfig) -> DataFrame:
    """Season `season`'s samples from the neighbour lists (lazy; nothing runs until written)."""
    return neighbours.mapInArrow(_season_sampler(season, seed, n_assets, config), SAMPLE_SCHEMA)


def write_season(samples: DataFrame, path: str, season: int) -> None:
    """Replace season `season` of the Delta table at `path` atomically (other seasons untouched)."""
    (
        samples.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", f"season = {int(season)}")
        .partitionBy("season")
        .save(path)
    )
