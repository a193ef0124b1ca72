"""film2vec's trainer against gensim Word2Vec on the same (origin, target) pairs of one MovieLens season.

One season is sampled from the train views of MovieLens latest-small (the protocol's split) by the
configured sampler's kernels (benchmarks/movielens.py). film2vec trains on it streamed from Delta; gensim
(sg=1, window=1, each pair a two-word sentence, sample=0) on
the same pairs with the same dimension, negatives, threads, epochs and learning rate, both from a Python
list of sentences and from a corpus file (its fastest, GIL-free mode). Only training is timed (gensim's
vocabulary scan and film2vec's seasons write are not; film2vec's one-off build of its C step, or its
torch.compile under --step-kernel torch, happens in a warm-up run on 100,000 of the pairs, printed apart).
Prints pairs/s, the ratios and both models' figures.

    pip install -e ".[bench]" && python -m benchmarks.bench_trainer --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.movielens import Sampling, load, sample_season, without_rare
from film2vec.config import SeasonsConfig, TrainConfig
from film2vec.evaluation.protocol import evaluate
from film2vec.seasons.sampler import negatives_plan
from film2vec.seasons.walks import Negatives
from film2vec.train.trainer import train


def film2vec_run(path: str, negatives: Negatives, config: TrainConfig) -> tuple[float, np.ndarray]:
    """(training seconds, vectors) of one season, `epochs_per_season` passes, negatives drawn as it trains."""
    started = time.perf_counter()
    result = train(path, [0], negatives.n_assets, config, negatives=negatives)
    return time.perf_counter() - started, result.vectors


def gensim_run(origin, target, n_assets: int, config: TrainConfig, negatives: int, corpus_file: str | None):
    """(training seconds, vectors) of gensim Word2Vec on the pairs as two-word sentences."""
    from gensim.models import Word2Vec

    model = Word2Vec(
        vector_size=config.dim,
        window=1,
        sg=1,
        negative=negatives,
        sample=0,
        min_count=1,
        workers=config.threads,
        alpha=config.learning_rate,
        min_alpha=config.learning_rate * config.lr_floor,
        seed=1,
    )
    if corpus_file:
        model.build_vocab(corpus_file=corpus_file)
        words = sum(model.wv.get_vecattr(key, "count") for key in model.wv.index_to_key)
        started = time.perf_counter()
        model.train(
            corpus_file=corpus_file, total_examples=len(origin), total_words=words, epochs=config.epochs_per_season
        )
    else:
        sentences = [[str(a), str(b)] for a, b in zip(origin.tolist(), target.tolist(), strict=True)]
        model.build_vocab(sentences)
        started = time.perf_counter()
        model.train(sentences, total_examples=len(sentences), epochs=config.epochs_per_season)
    seconds = time.perf_counter() - started
    vectors = np.zeros((n_assets, config.dim))
    keys = model.wv.index_to_key
    vectors[np.array(keys, dtype=np.int64)] = model.wv.vectors[: len(keys)]
    return seconds, vectors


def figures(vectors: np.ndarray, catalogue, min_views: int) -> dict[str, float]:
    scored = evaluate(without_rare(vectors, catalogue, min_views), catalogue.split, catalogue.genres)
    return {key: round(value, 4) for key, value in scored.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples-per-view", type=float, default=SeasonsConfig().samples_per_view)
    parser.add_argument("--negatives", type=int, default=SeasonsConfig().negatives)
    parser.add_argument("--epochs", type=int, default=5, help="passes over the season, for both")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each; medians are printed")
    parser.add_argument("--step-kernel", default="auto", choices=("auto", "native", "torch"), help="film2vec's step")
    parser.add_argument(
        "--compile", default="on", choices=("on", "off"), help="film2vec's compile_step for --step-kernel torch"
    )
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    config = TrainConfig(
        device="cpu",
        threads=arguments.threads,
        epochs_per_season=arguments.epochs,
        step_kernel=arguments.step_kernel,
        compile_step=arguments.compile,
    )
    catalogue = load()
    seasons = SeasonsConfig(samples_per_view=arguments.samples_per_view, negatives=arguments.negatives)
    season = sample_season(catalogue, Sampling(seasons), season=0, seed=0)
    negatives = negatives_plan(seasons, catalogue.train_views)
    n_assets = negatives.n_assets
    origin, target = season.column("origin").to_numpy(), season.column("target").to_numpy()
    pairs = len(origin) * arguments.epochs
    seconds: dict[str, list[float]] = {"film2vec": [], "gensim": [], "gensim_corpus_file": []}
    vectors: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as folder:
        from deltalake import write_deltalake

        write_deltalake(f"{folder}/seasons", season, partition_by=["season"])
        corpus = Path(folder) / "pairs.txt"
        corpus.write_text("".join(f"{a} {b}\n" for a, b in zip(origin.tolist(), target.tolist(), strict=True)))
        write_deltalake(f"{folder}/warm-up", season.slice(0, 100_000), partition_by=["season"])
        compile_seconds, _ = film2vec_run(f"{folder}/warm-up", negatives, config)  # builds or compiles the step once
        for _ in range(arguments.repeats):
            took, vectors["film2vec"] = film2vec_run(f"{folder}/seasons", negatives, config)
            seconds["film2vec"].append(took)
            took, vectors["gensim"] = gensim_run(origin, target, n_assets, config, arguments.negatives, None)
            seconds["gensim"].append(took)
            took, vectors["gensim_corpus_file"] = gensim_run(
                origin, target, n_assets, config, arguments.negatives, str(corpus)
            )
            seconds["gensim_corpus_file"].append(took)
    rates = {name: pairs / statistics.median(times) for name, times in seconds.items()}
    report = {
        "pairs": len(origin),
        "epochs": arguments.epochs,
        "threads": arguments.threads,
        "step_kernel": arguments.step_kernel,
        "repeats": arguments.repeats,
        "pairs_per_second": {name: round(rate) for name, rate in rates.items()},
        "film2vec_warm_up_seconds": round(compile_seconds, 1),
        "ratio_vs_gensim": round(rates["film2vec"] / rates["gensim"], 2),
        "ratio_vs_gensim_corpus_file": round(rates["film2vec"] / rates["gensim_corpus_file"], 2),
        "figures": {name: figures(v, catalogue, config.min_views) for name, v in vectors.items()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
