"""Samples/s of one season: the Spark sampler with its Delta write, against the same kernels in one process.

The floor runs the very mapInArrow functions of film2vec.seasons.sampler on the whole catalogue's lists in one
Python process with numpy and pyarrow only (no Spark, no write), so the ratio is what Spark and Delta cost.
To show how much of that is the write, the season just written is also read back and written again as a
second season table by the same Delta write (`write_season`): Spark's writer alone, with no sampling.

    python -m benchmarks.bench_sampling --out /tmp/ml-out            # ingests MovieLens there when needed
    python -m benchmarks.bench_sampling --out /tmp/ml-out --walk bipartite --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from film2vec.config import Config
from film2vec.seasons.sampler import bipartite_first_step, bipartite_second_step, coview_step, sampling_plan
from film2vec.seasons.stage import write_season
from film2vec.seasons.walks import stream_key
from film2vec.tables import read_without_spark
from film2vec.train.stream import season_rows

MOVIELENS = "/work/shared/data/ml-latest-small"


def _lists(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, pa.ListArray]:
    """Sorted distinct keys and, per key, its sorted values as an Arrow list column (as Spark builds them)."""
    order = np.lexsort((values, keys))
    keys, values = keys[order], values[order]
    distinct, starts = np.unique(keys, return_index=True)
    offsets = np.append(starts, len(keys)).astype(np.int32)
    return distinct, pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))


def floor_coview(config: Config, season: int) -> Callable[[], int]:
    """The co-view walk's lists built in this process; the returned call samples one season, counting rows."""
    assets = read_without_spark(config.out("assets"), "assets", ["asset_id", "asset_idx", "views"])
    pairs = read_without_spark(config.out("pairs"), "pairs", ["asset_a", "asset_b", "co_views"])
    index = np.empty(pc.max(assets.column("asset_id")).as_py() + 1, dtype=np.int32)
    index[assets.column("asset_id").to_numpy()] = assets.column("asset_idx").to_numpy()
    views = np.empty(assets.num_rows, dtype=np.int64)
    views[assets.column("asset_idx").to_numpy()] = assets.column("views").to_numpy()
    origin_all = index[pairs.column("asset_a").to_numpy()]
    neighbour = index[pairs.column("asset_b").to_numpy()]
    order = np.lexsort((neighbour, origin_all))
    origin, neighbours = _lists(origin_all[order], neighbour[order])
    co_views = pa.ListArray.from_arrays(neighbours.offsets, pa.array(pairs.column("co_views").to_numpy()[order]))
    batch = pa.RecordBatch.from_arrays(
        [pa.array(origin), pa.array(views[origin]), neighbours, co_views],
        names=["origin", "views", "neighbours", "co_views"],
    )
    origins = sampling_plan(config.seasons, views, views[origin])
    step = coview_step(stream_key(config.seed, season), season, origins, config.seasons.negatives)
    return lambda: sum(out.num_rows for out in step(iter([batch])))


def floor_bipartite(config: Config, season: int) -> Callable[[], int]:
    """The bipartite walk's lists built in this process; the returned call samples one season (one user bucket)."""
    views_table = read_without_spark(config.out("views"), "views", ["user_id", "asset_idx"])
    assets = read_without_spark(config.out("assets"), "assets", ["asset_idx", "views"])
    user, asset = views_table.column("user_id").to_numpy(), views_table.column("asset_idx").to_numpy()
    dense_user = np.unique(user, return_inverse=True)[1]
    degree = np.bincount(dense_user)[dense_user]
    user, asset = user[degree >= 2], asset[degree >= 2]
    views = np.empty(assets.num_rows, dtype=np.int64)
    views[assets.column("asset_idx").to_numpy()] = assets.column("views").to_numpy()
    origin, users = _lists(asset, user)
    user_ids, assets_of = _lists(user, asset)
    origins = sampling_plan(config.seasons, views, views[origin])
    key = stream_key(config.seed, season)
    first = bipartite_first_step(key, origins, config.seasons.negatives)
    second = bipartite_second_step(key, season, config.seasons.negatives)
    batch = pa.RecordBatch.from_arrays([pa.array(origin), pa.array(views[origin]), users], ["origin", "views", "users"])
    lists = pa.table({"user_id": user_ids, "assets": assets_of})
    return lambda: second(pa.Table.from_batches(list(first(iter([batch])))), lists).num_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder with views, assets and pairs (ingested when missing)")
    parser.add_argument("--events", default=MOVIELENS)
    parser.add_argument("--samples", type=int, default=10_000_000)
    parser.add_argument("--walk", default="coview", choices=("coview", "bipartite"))
    parser.add_argument("--negatives", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sample-partitions", type=int, default=2)
    arguments = parser.parse_args()

    from pyspark.sql import functions as F

    from film2vec.pairs.stage import count_pairs
    from film2vec.seasons.stage import season_sampler_for
    from film2vec.spark import get_spark

    config = Config()
    config.data.out, config.data.events = arguments.out, arguments.events
    config.seasons.walk, config.seasons.negatives = arguments.walk, arguments.negatives
    config.seasons.sample_partitions = arguments.sample_partitions
    spark = get_spark(config.spark)
    if not (Path(config.out("pairs")) / "_delta_log").is_dir():
        count_pairs(spark, config)
    sampler = season_sampler_for(spark, config)
    n_origins = sampler.origin_lists.count()
    origin_views = sampler.origin_lists.agg(F.sum("views")).first()[0]
    config.seasons.samples_per_view = arguments.samples / origin_views
    sampler = season_sampler_for(spark, config)
    for lists in (sampler.origin_lists, sampler.user_lists):  # cached once per run, for every season: built untimed
        if lists is not None:
            lists.count()
    floor = (floor_coview if arguments.walk == "coview" else floor_bipartite)(config, 0)

    spark_rates, floor_rates, write_rates = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(arguments.repeats):
            seasons = str(Path(folder) / "seasons")
            started = time.perf_counter()
            sampler.write(0, seasons)
            seconds = time.perf_counter() - started
            written = season_rows(seasons, 0)
            spark_rates.append(written / seconds)
            started = time.perf_counter()
            write_season(spark.read.format("delta").load(seasons), str(Path(folder) / "rewritten"), 0)
            write_rates.append(written / (time.perf_counter() - started))
            started = time.perf_counter()
            made = floor()
            floor_rates.append(made / (time.perf_counter() - started))
            if made != written:
                raise SystemExit(f"the floor made {made:,} samples but Spark wrote {written:,}: not the same season")
            print(
                f"repeat {repeat + 1}: spark {spark_rates[-1]:,.0f}, floor {floor_rates[-1]:,.0f}, "
                f"read and rewrite {write_rates[-1]:,.0f} samples/s"
            )
    spark_rate, floor_rate = statistics.median(spark_rates), statistics.median(floor_rates)
    write_rate = statistics.median(write_rates)
    print(
        f"{arguments.walk} walk, {written:,} samples ({n_origins:,} origins, "
        f"{config.seasons.samples_per_view:.2f} per view, "
        f"{arguments.negatives} negatives), medians of {arguments.repeats}:\n"
        f"  spark sampler + Delta write: {spark_rate:,.0f} samples/s\n"
        f"  numpy floor, one process:    {floor_rate:,.0f} samples/s\n"
        f"  floor / spark: {floor_rate / spark_rate:.2f}×\n"
        f"  the same rows read back and written again by Spark, no sampling: {write_rate:,.0f} samples/s "
        f"(floor / that: {floor_rate / write_rate:.2f}×)"
    )
    sampler.release()


if __name__ == "__main__":
    main()
