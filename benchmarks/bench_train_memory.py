"""The trainer at catalogue scale: peak memory and samples/s of one season over 100k and 1M assets, beside
what the parameters alone take.

    python -m benchmarks.bench_train_memory [--assets 100000 1000000] [--samples 5000000] [--dim 64]

A season of `--samples` (origin, target) pairs is written to Delta by delta-rs, origins and targets drawn
∝ a Zipf popularity (exponent 1) over the catalogue and negatives ∝ views^0.75 as the defaults draw them;
the default TrainConfig (the C step on the CPU) trains it once. Peak memory is this process's largest
resident set, sampled every 0.1 s, less its resident set before the catalogue was made. The parameters
are one float32 matrix (assets x dim, shared by origins and candidates) and one float32 Adagrad
accumulator per row; the rest is the stream's buffers (the shuffle buffer of `shuffle_buffer` samples,
each with its negatives) and torch's own.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import pyarrow.compute as pc
from deltalake import write_deltalake

from benchmarks.bench_neighbours import PeakMemory
from benchmarks.bench_scale import tree_rss
from film2vec.config import SeasonsConfig, TrainConfig
from film2vec.seasons.sampler import negatives_plan, sample_batch
from film2vec.seasons.walks import Negatives
from film2vec.train.trainer import train


def zipf_season(folder: str, assets: int, samples: int) -> Negatives:
    """Write season 0 of `samples` Zipf-popular (origin, target) pairs to FOLDER/seasons; its negatives."""
    rng = np.random.default_rng(0)
    popularity = 1.0 / np.arange(1, assets + 1)
    popularity /= popularity.sum()
    origin = rng.choice(assets, samples, p=popularity)
    target = rng.choice(assets, samples, p=popularity)
    negatives = negatives_plan(SeasonsConfig(), np.bincount(origin, minlength=assets))
    batch = sample_batch(0, origin, np.arange(samples), target)
    batch = batch.take(pc.sort_indices(batch, [("draw", "ascending")]))  # a season's rows are in draw order
    write_deltalake(f"{folder}/seasons", batch, partition_by=["season"])
    return negatives


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--samples", type=int, default=5_000_000)
    parser.add_argument("--dim", type=int, default=TrainConfig().dim)
    arguments = parser.parse_args()
    config = TrainConfig(dim=arguments.dim)
    print(f"{os.cpu_count()} cores, dim {config.dim}, batch {config.batch_size}, shuffle {config.shuffle_buffer}")
    for assets in arguments.assets:
        before = tree_rss(os.getpid())
        with tempfile.TemporaryDirectory() as folder:
            negatives = zipf_season(folder, assets, arguments.samples)
            with PeakMemory() as memory:
                started = time.perf_counter()
                train(f"{folder}/seasons", [0], assets, config, negatives=negatives)
                seconds = time.perf_counter() - started
        parameters = assets * (config.dim + 1) * 4
        print(
            f"{assets:>10,} assets  {arguments.samples:,} samples  {seconds:6.1f} s "
            f"({arguments.samples / seconds / 1e3:,.0f}k samples/s)  peak {(memory.peak - before) / 2**30:.2f} GiB "
            f"above the start, parameters {parameters / 2**30:.3f} GiB",
            flush=True,
        )


if __name__ == "__main__":
    main()
