"""The nightly refresh against a full retrain, on MovieLens latest-small split by time.

    python -m benchmarks.bench_refresh --out DIR [--repeats 1] [--full-repeats N] [--warm-seasons 1]
        [--warm-learning-rate 0.1] [--warm-new-assets random] [--seasons 0] [--samples-per-view 30]
        [--epochs-per-season 1] [--reuse-history]   (defaults: film2vec's)

The protocol's split comes first (per user, the last 5 views are test; see film2vec/evaluation/protocol.py). The train
views are then ordered by time: the first 90% are the history a model was trained on (`film2vec run`,
not timed), the last 10% the new batch. `film2vec refresh` merges the batch and warm-starts from that
model; `film2vec run` retrains from scratch on all train views. Both are timed (medians over --repeats,
each refresh from a fresh copy of the history's tables) and scored on the held-out test views.
`--reuse-history` keeps DIR's history model from an earlier run with the same settings (it is not timed),
and `--full-repeats 0` skips the full retrain: both for trying refresh settings quickly.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmarks.movielens import MOVIELENS
from film2vec import pipeline, tables
from film2vec.config import Config, RefreshConfig, SeasonsConfig, TrainConfig
from film2vec.evaluation.protocol import HeldOut
from film2vec.evaluation.stage import split_events
from film2vec.spark import get_spark
from film2vec.tables import read_without_spark


def time_split(train: pa.Table, share: float) -> tuple[pa.Table, pa.Table]:
    """(first `share` of the views by time, the rest); ties in time go by (user, asset) order."""
    order = np.lexsort(
        (train.column("asset_id").to_numpy(), train.column("user_id").to_numpy(), train.column("viewed_at").to_numpy())
    )
    cut = int(round(share * len(order)))
    return train.take(pa.array(order[:cut])), train.take(pa.array(order[cut:]))


def score(held_out: HeldOut, config: Config) -> dict[str, float]:
    embeddings = read_without_spark(config.out("embeddings"), "embeddings", ["asset_id", "vector"])
    return {name: round(value, 4) for name, value in held_out.score(embeddings).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="working folder (replaced)")
    parser.add_argument("--movielens", default=str(MOVIELENS), help="MovieLens latest-small folder")
    parser.add_argument("--history-share", type=float, default=0.9, help="share of train views in the history")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of refresh and of the full retrain")
    parser.add_argument("--full-repeats", type=int, help="timed runs of the full retrain (default: --repeats)")
    train, seasons = TrainConfig(), SeasonsConfig()
    parser.add_argument("--warm-seasons", type=int, default=RefreshConfig().warm_seasons, help="seasons of the refresh")
    parser.add_argument(
        "--warm-learning-rate", type=float, default=train.warm_learning_rate, help="first learning rate of the refresh"
    )
    parser.add_argument("--warm-new-assets", default=train.warm_new_assets, help="where the refresh starts new assets")
    parser.add_argument(
        "--seasons", type=int, default=seasons.seasons, help="seasons of the history model and the full retrain"
    )
    parser.add_argument(
        "--samples-per-view", type=float, default=seasons.samples_per_view, help="per season, every model"
    )
    parser.add_argument("--epochs-per-season", type=int, default=train.epochs_per_season, help="every model")
    parser.add_argument("--reuse-history", action="store_true", help="keep DIR's history model when it is there")
    arguments = parser.parse_args()
    root = Path(arguments.out).resolve()
    reuse = arguments.reuse_history and (root / "base" / "embeddings").is_dir()
    if not reuse:
        shutil.rmtree(root, ignore_errors=True)

    config = Config()
    config.data.events, config.data.out = arguments.movielens, str(root / "input")
    config.refresh.warm_seasons, config.seasons.seasons = arguments.warm_seasons, arguments.seasons
    config.train.warm_learning_rate = arguments.warm_learning_rate
    config.train.warm_new_assets = arguments.warm_new_assets
    config.seasons.samples_per_view = arguments.samples_per_view
    config.train.epochs_per_season = arguments.epochs_per_season
    spark = get_spark(config.spark)
    held_out, split = split_events(spark, config)
    history, batch = time_split(split["train"], arguments.history_share)
    inputs = {"history": history, "batch": batch, "train": split["train"], "metadata": split["metadata"]}
    if not reuse:
        for name, table in inputs.items():
            tables.of(config, name).write(spark.createDataFrame(table))
    print(f"views: history {history.num_rows:,}, batch {batch.num_rows:,}, test {split['test'].num_rows:,}")

    base = copy.deepcopy(config)
    base.data.events, base.data.metadata, base.data.out = (
        config.out("history"),
        config.out("metadata"),
        str(root / "base"),
    )
    started = time.perf_counter()
    if not reuse:
        pipeline.run(spark, base)
    base_seconds = time.perf_counter() - started
    figures = {"history model": score(held_out, base)}

    refresh_seconds, refreshed = [], None
    for repeat in range(arguments.repeats):
        nightly = copy.deepcopy(base)
        nightly.data.out = str(root / f"refresh-{repeat}")
        shutil.rmtree(nightly.data.out, ignore_errors=True)
        shutil.copytree(base.data.out, nightly.data.out)
        nightly.data.new_events = config.out("batch")
        started = time.perf_counter()
        refreshed = pipeline.refresh(spark, nightly)
        refresh_seconds.append(time.perf_counter() - started)
    figures["refreshed"] = score(held_out, nightly)

    full_seconds, retrained = [], None
    full_repeats = arguments.repeats if arguments.full_repeats is None else arguments.full_repeats
    for repeat in range(full_repeats):
        full = copy.deepcopy(base)
        full.data.events, full.data.out = config.out("train"), str(root / f"full-{repeat}")
        shutil.rmtree(full.data.out, ignore_errors=True)
        started = time.perf_counter()
        retrained = pipeline.run(spark, full)
        full_seconds.append(time.perf_counter() - started)
        figures["full retrain"] = score(held_out, full)

    refresh_median = statistics.median(refresh_seconds)
    print(f"history model (run on the first {arguments.history_share:.0%}): {base_seconds:.1f} s")
    print(f"refresh: median {refresh_median:.1f} s of {[round(s, 1) for s in refresh_seconds]}")
    print(f"refresh stages (s): {json.dumps({k: v['seconds'] for k, v in refreshed.items()})}")
    print(f"refresh merge steps (s): {json.dumps(refreshed['inputs']['seconds_by_step'])}")
    merged = {k: v for k, v in refreshed["inputs"].items() if k.startswith("pair_rows")}
    print(f"pair table rows: {json.dumps(merged) if merged else refreshed['inputs']['pairs']}")
    if retrained:
        full_median = statistics.median(full_seconds)
        print(f"full retrain: median {full_median:.1f} s of {[round(s, 1) for s in full_seconds]}")
        print(f"full retrain stages (s): {json.dumps({k: v['seconds'] for k, v in retrained.items()})}")
        print(f"refresh / full retrain: {refresh_median / full_median:.2f}")
    print(f"warm start: {json.dumps(refreshed['train']['warm_start'])}")
    print(f"batch: {refreshed['inputs']['ingest']['valid']:,} valid views merged")
    print("figures on the held-out test views (Recall@20, NDCG@20, GenreP@10):")
    for name, found in figures.items():
        print(f"  {name:14s} {json.dumps(found)}")


if __name__ == "__main__":
    main()
