"""`film2vec similar` on a 20,000-asset catalogue: the Spark job that writes the neighbours table, then the
lookup as a user runs it, a whole process each time.

    python -m benchmarks.bench_similar [--assets 20000] [--dim 64] [--k 10] [--repeats 5] [--out DIR]

Random vectors and an assets table (asset_id, title, views) go to Delta tables under DIR; the neighbours
table is written by neighbours.neighbours_table (timed from the read of the vectors to the commit); then
`python -m film2vec.cli similar ID --out DIR` and `python -m film2vec.cli --help` run `--repeats` times each,
with each time and the median printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from deltalake import write_deltalake

from film2vec.config import Config
from film2vec.serving.stage import neighbours_table
from film2vec.spark import get_spark

ROOT = Path(__file__).resolve().parents[1]


def catalogue(assets: int, dim: int, seed: int) -> tuple[pa.Table, pa.Table]:
    """(embeddings: asset_id, vector; assets: asset_id, title, views) of a random catalogue."""
    rng = np.random.default_rng(seed)
    asset_ids = np.arange(assets, dtype=np.int64) * 7 + 100
    vectors = rng.normal(size=(assets, dim)).astype(np.float32)
    embeddings = pa.table(
        {
            "asset_id": asset_ids,
            "vector": pa.FixedSizeListArray.from_arrays(vectors.ravel(), dim).cast(pa.list_(pa.float32())),
        }
    )
    titles = pa.table(
        {
            "asset_id": asset_ids,
            "title": [f"Asset {asset}" for asset in asset_ids.tolist()],
            "views": rng.integers(1, 10_000, size=assets),
        }
    )
    return embeddings, titles


def timed_runs(arguments: list[str], repeats: int) -> list[float]:
    """Wall seconds of `python -m film2vec.cli ARGUMENTS`, run `repeats` times from this checkout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "film2vec.cli", *arguments], env=env, check=True, capture_output=True)
        seconds.append(time.perf_counter() - start)
    return seconds


def report(what: str, seconds: list[float]) -> None:
    print(f"  {what:<28} median {statistics.median(seconds):6.2f} s   each " + " ".join(f"{s:.2f}" for s in seconds))


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--assets", type=int, default=20_000)
    options.add_argument("--dim", type=int, default=64)
    options.add_argument("--k", type=int, default=10)
    options.add_argument("--repeats", type=int, default=5)
    options.add_argument("--out", default=None, help="folder for the tables (default: a temporary one)")
    arguments = options.parse_args()
    out = Path(arguments.out or tempfile.mkdtemp(prefix="bench-similar-"))
    config = Config()
    config.data.out = str(out)
    embeddings, titles = catalogue(arguments.assets, arguments.dim, seed=0)
    write_deltalake(config.out("embeddings"), embeddings, mode="overwrite")
    write_deltalake(config.out("assets"), titles, mode="overwrite")
    print(f"{arguments.assets:,} assets x {arguments.dim}, k {arguments.k}, under {out}", flush=True)

    spark = get_spark(config.spark, "bench-similar")
    start = time.perf_counter()
    vectors = spark.read.format("delta").load(config.out("embeddings"))
    neighbours_table(vectors, arguments.k).write.format("delta").mode("overwrite").save(config.out("neighbours"))
    seconds = time.perf_counter() - start
    rows = spark.read.format("delta").load(config.out("neighbours")).count()
    print(f"  neighbours table (Spark)     {seconds:6.1f} s   {rows:,} rows", flush=True)
    spark.stop()

    asset = str(titles.column("asset_id")[arguments.assets // 2].as_py())
    report("film2vec similar ID", timed_runs(["similar", asset, "--out", str(out)], arguments.repeats))
    report("film2vec --help", timed_runs(["--help"], arguments.repeats))


if __name__ == "__main__":
    main()
