"""Training on several processes (--processes, Spark's TorchDistributor in local mode) against one process:
samples/s and how far the vectors land from the single process's.

    python -m benchmarks.bench_processes [--assets 20000] [--samples 2000000] [--processes 2]

One season of Zipf-popular pairs (benchmarks/bench_train_memory.py) is trained once per setting, each on
the whole machine: the C step in one process (the default), the eager tensor-code step in one process (what
each of the processes runs), and that step on --processes processes. Wall time includes starting the
processes (torchrun, then gloo's rendezvous), which a season pays once.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time

import numpy as np

from benchmarks.bench_train_memory import zipf_season
from film2vec.config import SparkConfig, TrainConfig
from film2vec.spark import get_spark
from film2vec.train.trainer import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=2_000_000)
    parser.add_argument("--processes", type=int, default=2)
    arguments = parser.parse_args()
    get_spark(SparkConfig(master="local[2]"), "film2vec-bench-processes")  # TorchDistributor asks for a session
    eager = TrainConfig(step_kernel="torch", compile_step="off")
    settings = {
        "one process, C step": TrainConfig(),
        "one process, eager step": eager,
        f"{arguments.processes} processes, eager step": dataclasses.replace(eager, processes=arguments.processes),
    }
    print(f"{os.cpu_count()} cores, {arguments.assets:,} assets, {arguments.samples:,} samples, dim {eager.dim}")
    with tempfile.TemporaryDirectory() as folder:
        negatives = zipf_season(folder, arguments.assets, arguments.samples)
        vectors, rates = {}, {}
        for name, config in settings.items():
            started = time.perf_counter()
            result = train(f"{folder}/seasons", [0], arguments.assets, config, negatives=negatives)
            seconds = time.perf_counter() - started
            vectors[name], rates[name] = result.vectors, arguments.samples / seconds
            print(
                f"{name:<28} {seconds:7.1f} s  {rates[name] / 1e3:8,.0f}k samples/s  "
                f"loss {result.history[-1].loss:.4f}",
                flush=True,
            )
    single, together = list(settings)[1:]
    print(
        f"{together} / {single}: {rates[together] / rates[single]:.2f}x the rate; "
        f"largest vector difference {np.abs(vectors[together] - vectors[single]).max():.2e}"
    )


if __name__ == "__main__":
    main()
