"""Exact neighbours at catalogue scale: the neighbours table of random unit vectors, by Spark's executors
(query blocks against broadcast shards) and on the driver, with wall time, peak memory and the measured
exponent of time in the catalogue's size.

    python -m benchmarks.bench_neighbours [--assets 20000 50000 100000] [--dim 64] [--k 10] [--paths spark driver]

Each size's vectors are written to a Delta table first (not timed); the Spark path is timed from the read to
the neighbours table's commit, the driver path from the vectors in memory to its rows. Peak memory is the
largest resident set of this process and its descendants (the JVM and its Python workers), sampled every
0.1 s from /proc. The exponent between two sizes is log(t2 / t1) / log(n2 / n1); exact all-pairs is 2 in
principle, lower where fixed costs still weigh.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import threading
import time

import numpy as np
import pyarrow as pa
from deltalake import write_deltalake

from benchmarks.bench_scale import tree_rss
from film2vec.config import SparkConfig
from film2vec.serving.stage import neighbours_on_driver, neighbours_table
from film2vec.spark import get_spark


class PeakMemory:
    """The largest resident set of this process tree while the block runs."""

    def __enter__(self) -> PeakMemory:
        self.peak, self._stop = tree_rss(os.getpid()), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, tree_rss(os.getpid()))

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def catalogue(assets: int, dim: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(assets, dim)).astype(np.float32)
    return pa.table({"asset_id": np.arange(assets, dtype=np.int64), "vector": list(vectors)}).cast(
        pa.schema([("asset_id", pa.int64()), ("vector", pa.list_(pa.float32()))])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=int, nargs="+", default=[20_000, 50_000, 100_000])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--paths", nargs="+", choices=("spark", "driver"), default=["spark", "driver"])
    arguments = parser.parse_args()
    spark = get_spark(SparkConfig(master="local[*]"), "film2vec-bench-neighbours")
    results: dict[str, list[tuple[int, float, int]]] = {path: [] for path in arguments.paths}
    with tempfile.TemporaryDirectory() as scratch:
        for assets in arguments.assets:
            table = catalogue(assets, arguments.dim)
            folder = f"{scratch}/embeddings-{assets}"
            write_deltalake(folder, table)
            for path in arguments.paths:
                with PeakMemory() as memory:
                    started = time.perf_counter()
                    if path == "spark":
                        embeddings = spark.read.format("delta").load(folder)
                        found = neighbours_table(embeddings, arguments.k)
                        found.write.format("delta").mode("overwrite").save(f"{scratch}/neighbours-{assets}")
                        rows = spark.read.format("delta").load(f"{scratch}/neighbours-{assets}").count()
                    else:
                        rows = neighbours_on_driver(table, arguments.k).num_rows
                    seconds = time.perf_counter() - started
                assert rows == assets * arguments.k, (path, assets, rows)
                results[path].append((assets, seconds, memory.peak))
                print(
                    f"{path:>6}  {assets:>9,} assets  {seconds:8.1f} s  peak {memory.peak / 2**30:5.2f} GiB", flush=True
                )
    for path, measured in results.items():
        for (n1, t1, _), (n2, t2, _) in zip(measured, measured[1:]):
            print(f"{path:>6}  exponent {n1:,} -> {n2:,}: {math.log(t2 / t1) / math.log(n2 / n1):.2f}")
        if len(measured) >= 2:
            (n1, t1, _), (n2, t2, _) = measured[-2], measured[-1]
            exponent = math.log(t2 / t1) / math.log(n2 / n1)
            million = t2 * (1_000_000 / n2) ** max(exponent, 2.0)
            print(
                f"{path:>6}  a million assets at exponent {max(exponent, 2.0):.2f}: {million / 3600:.1f} h here "
                f"({os.cpu_count()} cores), {million * os.cpu_count() / 64 / 3600:.2f} h on 64 cores"
            )


if __name__ == "__main__":
    main()
