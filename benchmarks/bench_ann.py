"""Approximate neighbours (film2vec.serving.ann, FAISS HNSW) against exact ones: recall@k, build and query time, the
Spark table's wall time and peak memory, and the served model's latency with and without the index.

    python -m benchmarks.bench_ann [--assets 100000 250000] [--dim 64] [--k 10] [--kinds random clustered]
                                   [--recall 0.95] [--latency 20000 250000] [--spark approximate exact]

Vectors: "random" (Gaussian: no structure, the hardest case for a graph index) and "clustered" (each asset
near one of assets/50 centres, as trained vectors group by taste). Each index is tuned as training tunes it
(neighbours.tuned_index: the search depth doubles until 1,000 sampled assets find --recall of their exact
neighbours), then its recall@k is measured again on 2,000 other sampled assets. The build and the tuning
are timed together; "search all" is every asset's search, in this process. --spark also times the neighbours
table by approximate_neighbours_table (build and tuning included) and by the exact neighbours_table, each
written to Delta. Latency: a model logged to a local MLflow store and
loaded with mlflow.pyfunc.load_model, 200 predicts of 1 asset and of 100, p50 and p99.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa

from benchmarks.bench_neighbours import PeakMemory
from film2vec.config import TrackingConfig
from film2vec.serving import ann
from film2vec.serving.nearest import normalised, top_neighbours
from film2vec.serving.stage import recall_of, tuned_index
from film2vec.tables import embeddings_table
from film2vec.tracking import experiment_id, log_similar_assets_model, use_store


def vectors_of(kind: str, assets: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "random":
        return rng.normal(size=(assets, dim)).astype(np.float32)
    centres = rng.normal(size=(max(1, assets // 50), dim))
    return (centres[rng.integers(0, len(centres), assets)] + 0.7 * rng.normal(size=(assets, dim))).astype(np.float32)


def recall(index, unit: np.ndarray, k: int, sample: int = 2_000) -> float:
    """Recall@k on a sample of assets other than the one the depth was tuned on."""
    rows = np.random.default_rng(1).choice(len(unit), min(sample, len(unit)), replace=False)
    exact, _ = top_neighbours(unit, rows, k)
    found, _ = ann.search(index, unit[rows], rows, k)
    return recall_of(found, exact)


def latencies(uri: str, asset_ids: np.ndarray, repeats: int = 200) -> dict[int, tuple[float, float]]:
    model = mlflow.pyfunc.load_model(uri)
    rng = np.random.default_rng(2)
    found = {}
    for batch in (1, 100):
        seconds = []
        for _ in range(repeats):
            queries = pd.DataFrame({"asset_id": rng.choice(asset_ids, batch).tolist()})
            started = time.perf_counter()
            model.predict(queries)
            seconds.append(time.perf_counter() - started)
        found[batch] = (np.percentile(seconds, 50) * 1e3, np.percentile(seconds, 99) * 1e3)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=int, nargs="+", default=[100_000, 250_000])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--kinds", nargs="+", choices=("random", "clustered"), default=["random", "clustered"])
    parser.add_argument("--recall", type=float, default=TrackingConfig().ann_recall, help="the recall tuned for")
    parser.add_argument("--latency", type=int, nargs="*", default=[20_000, 250_000])
    parser.add_argument("--spark", nargs="*", choices=("approximate", "exact"), default=[], help="tables to time")
    arguments = parser.parse_args()
    print(f"{os.cpu_count()} cores, faiss {ann.faiss_module().__version__}, dim {arguments.dim}, k {arguments.k}")
    for assets in arguments.assets:
        for kind in arguments.kinds:
            unit = normalised(vectors_of(kind, assets, arguments.dim))
            with PeakMemory() as memory:
                started = time.perf_counter()
                index, tuned = tuned_index(unit, arguments.k, arguments.recall)
                built = time.perf_counter() - started
            started = time.perf_counter()
            ann.search(index, unit, np.arange(assets), arguments.k)
            searched = time.perf_counter() - started
            print(
                f"{kind:>9} {assets:>9,} assets  depth {index.hnsw.efSearch:>5}  recall@{arguments.k} {tuned:.4f} "
                f"(another sample {recall(index, unit, arguments.k):.4f})  build and tune {built:6.1f} s  "
                f"search all {searched:6.1f} s ({searched / assets * 1e6:.0f} µs/asset)  "
                f"peak {memory.peak / 2**30:.2f} GiB",
                flush=True,
            )
            if arguments.spark and kind == arguments.kinds[0]:  # the table costs the same for any vectors
                spark_tables(assets, unit, arguments.k, arguments.recall, arguments.spark)
    for assets in arguments.latency:
        serving_latency(assets, arguments.dim, arguments.k, arguments.recall)


def spark_tables(assets: int, unit: np.ndarray, k: int, target: float, paths: list[str]) -> None:
    from film2vec.config import SparkConfig
    from film2vec.serving.stage import approximate_neighbours_table, neighbours_table
    from film2vec.spark import get_spark

    spark = get_spark(SparkConfig(master="local[*]"), "film2vec-bench-ann")
    ids = pa.array(np.arange(assets, dtype=np.int64))
    with tempfile.TemporaryDirectory() as scratch:
        for path in paths:
            with PeakMemory() as memory:
                started = time.perf_counter()
                if path == "approximate":
                    data = ann.index_bytes(tuned_index(unit, k, target)[0])
                    found = approximate_neighbours_table(spark, ids, data, k)
                else:
                    found = neighbours_table(spark.createDataFrame(embeddings_table(ids, unit)), k)
                found.write.format("delta").save(f"{scratch}/{path}")
                seconds = time.perf_counter() - started
            print(f"    spark {path:>11}  {assets:>9,} assets  {seconds:7.1f} s  peak {memory.peak / 2**30:.2f} GiB")


def serving_latency(assets: int, dim: int, k: int, target: float) -> None:
    unit = normalised(vectors_of("clustered", assets, dim))
    asset_ids = np.arange(assets, dtype=np.int64)
    with tempfile.TemporaryDirectory() as scratch:
        store = use_store(f"{scratch}/out")
        for searched in ("exact", "index"):
            staging = Path(scratch) / searched
            staging.mkdir()
            index = tuned_index(unit, k, target)[0] if searched == "index" else None
            tracking = TrackingConfig(model_name=f"latency_{searched}")
            with mlflow.start_run(experiment_id=experiment_id("latency", store)):
                registered = log_similar_assets_model(
                    embeddings_table(pa.array(asset_ids), unit), staging, tracking, True, index=index
                )
            for batch, (p50, p99) in latencies(registered.uri, asset_ids).items():
                shown = f"batch {batch:>3}  p50 {p50:7.2f}  p99 {p99:7.2f} ms"
                print(f"    served {searched:>5}  {assets:>9,} assets  {shown}")


if __name__ == "__main__":
    main()
