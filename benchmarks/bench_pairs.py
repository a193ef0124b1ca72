"""Pair counts: the gram method against the self-join reference and a single-process scipy XᵀX floor.

    python -m benchmarks.bench_pairs [--datasets movielens synthetic] [--repeats 3] [--join-repeats 1]

For each dataset: the views go to a Delta table once; then each method's full table (both orders, ids)
is computed and reduced to a fingerprint (row count, Σ co_views, XOR of the rows' hashes), timed, and the
fingerprints compared. The floor builds X from in-memory arrays and takes XᵀX off the diagonal with
scipy in this process. "The rows alone" hands as many made-up rows from Python to Spark and fingerprints
them: the part of any Spark method's time that no counting kernel can remove. Times are medians over the
repeats, after one untimed gram run that warms the JVM for both methods.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from scipy import sparse

from film2vec.config import SparkConfig, SyntheticConfig
from film2vec.ingest.synthetic import generate_catalogue
from film2vec.pairs.stage import estimate_pairs, gram_buckets, pairs_by_gram, pairs_by_join
from film2vec.spark import get_spark

MOVIELENS = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-latest-small" / "ratings.csv"
BLOCK_PAIRS = 50_000_000


def movielens_views() -> tuple[np.ndarray, np.ndarray]:
    ratings = pd.read_csv(MOVIELENS, usecols=["userId", "movieId"])
    return ratings["userId"].to_numpy(np.int64), ratings["movieId"].to_numpy(np.int64)


def synthetic_views() -> tuple[np.ndarray, np.ndarray]:
    catalogue = generate_catalogue(SyntheticConfig(users=10_000, views_per_user=200, catalogue_size=20_000), 0)
    return catalogue.user_id.astype(np.int64), catalogue.asset_id.astype(np.int64)


DATASETS = {"movielens": movielens_views, "synthetic": synthetic_views}


def fingerprint(pairs: DataFrame) -> tuple[int, int, int]:
    row_hash = F.xxhash64("asset_a", "asset_b", "co_views")
    found = pairs.agg(F.count("*"), F.sum("co_views"), F.bit_xor(row_hash)).first()
    return int(found[0]), int(found[1]), int(found[2])


def scipy_floor(users: np.ndarray, asset_idx: np.ndarray) -> tuple[int, int]:
    """(rows, Σ co_views) of XᵀX off the diagonal, single process."""
    _, user_row = np.unique(users, return_inverse=True)
    X = sparse.csr_matrix((np.ones(len(users), np.int32), (user_row, asset_idx)))
    X.sum_duplicates()
    X.data[:] = 1
    gram = X.T.tocsr() @ X
    diagonal = gram.diagonal()
    return gram.nnz - int(np.count_nonzero(diagonal)), int(gram.sum(dtype=np.int64) - diagonal.sum(dtype=np.int64))


def rows_alone(spark: SparkSession, rows: int, partitions: int) -> DataFrame:
    """`rows` made-up pair rows handed from Python to Spark in the gram's batches, with no counting: what any
    method that writes its rows through Spark pays at least, however fast its counting."""

    def emit(batches):
        for _ in batches:
            pass
        ids = np.arange(rows // partitions, dtype=np.int64)
        for start in range(0, len(ids), 1 << 20):
            column = pa.array(ids[start : start + (1 << 20)])
            yield pa.RecordBatch.from_arrays([column, column, column], names=["asset_a", "asset_b", "co_views"])

    return spark.range(partitions).repartition(partitions).mapInArrow(emit, "asset_a long, asset_b long, co_views long")


def timed(run, repeats: int) -> tuple[float, object]:
    seconds, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def bench(spark: SparkSession, name: str, folder: Path, repeats: int, join_repeats: int) -> None:
    users, asset_ids = DATASETS[name]()
    catalogue, asset_idx = np.unique(asset_ids, return_inverse=True)
    views_path, assets_path = str(folder / f"{name}-views"), str(folder / f"{name}-assets")
    views_frame = pd.DataFrame({"user_id": users, "asset_id": asset_ids, "asset_idx": asset_idx.astype(np.int32)})
    spark.createDataFrame(views_frame).write.format("delta").mode("overwrite").save(views_path)
    assets_frame = pd.DataFrame({"asset_idx": np.arange(len(catalogue), dtype=np.int32), "asset_id": catalogue})
    spark.createDataFrame(assets_frame).write.format("delta").mode("overwrite").save(assets_path)
    views = spark.read.format("delta").load(views_path)
    assets = spark.read.format("delta").load(assets_path)
    partitions = int(spark.conf.get("spark.sql.shuffle.partitions"))

    def gram() -> tuple[int, int, int]:
        estimate = estimate_pairs(views)
        buckets = gram_buckets(estimate, partitions, BLOCK_PAIRS)
        return fingerprint(pairs_by_gram(views, assets, buckets, block_pairs=BLOCK_PAIRS))

    estimate = estimate_pairs(views)
    print(
        f"\n{name}: {estimate.views:,} views, {estimate.users:,} users, {estimate.n_assets:,} assets, "
        f"{estimate.raw_pairs:,} raw pairs, {gram_buckets(estimate, partitions, BLOCK_PAIRS)} gram buckets",
        flush=True,
    )
    gram()  # untimed: the JVM's first run of these plans (class loading, JIT) would fall on whichever ran first
    floor_seconds, floor_result = timed(lambda: scipy_floor(users, asset_idx), repeats)
    print(f"  scipy XᵀX floor   {floor_seconds:8.1f} s  rows {floor_result[0]:,}", flush=True)
    gram_seconds, gram_result = timed(gram, repeats)
    print(f"  gram              {gram_seconds:8.1f} s  rows {gram_result[0]:,}", flush=True)
    print(f"  gram == floor (rows, Σ co_views): {gram_result[:2] == floor_result}")
    print(f"  gram / floor = {gram_seconds / floor_seconds:6.1f}x   (goal ≤ 3)", flush=True)
    buckets = gram_buckets(estimate, partitions, BLOCK_PAIRS)
    alone_seconds, _ = timed(lambda: fingerprint(rows_alone(spark, gram_result[0], buckets)), repeats)
    print(f"  the rows alone    {alone_seconds:8.1f} s  (made up in Python, fingerprinted by Spark: no counting)")
    if join_repeats == 0:
        return
    join_seconds, join_result = timed(lambda: fingerprint(pairs_by_join(views, assets)), join_repeats)
    print(f"  join              {join_seconds:8.1f} s  rows {join_result[0]:,}", flush=True)
    print(f"  gram == join (rows, Σ co_views, XOR of row hashes): {gram_result == join_result}")
    print(f"  join / gram  = {join_seconds / gram_seconds:6.1f}x   (goal ≥ 20)", flush=True)
    print(f"  join / the rows alone = {join_seconds / alone_seconds:6.1f}x   (the most any counting could reach)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=["movielens", "synthetic"])
    parser.add_argument("--repeats", type=int, default=3, help="runs of gram and the floor (median)")
    parser.add_argument("--join-repeats", type=int, default=1, help="runs of the join; 0 skips it")
    arguments = parser.parse_args()
    spark = get_spark(SparkConfig(driver_memory="4g"), "bench-pairs")
    with tempfile.TemporaryDirectory() as folder:
        for name in arguments.datasets:
            if name == "movielens" and not MOVIELENS.is_file():
                print(f"\nmovielens: {MOVIELENS} not found, skipped")
                continue
            bench(spark, name, Path(folder), arguments.repeats, arguments.join_repeats)
    spark.stop()


if __name__ == "__main__":
    main()
