"""Which sampling and model choices matter: train on MovieLens latest-small, score with the protocol.

Each variant changes one thing from the base (the defaults), samples its seasons with the product's sampling
kernels (benchmarks/movielens.py), trains with film2vec's trainer and prints one JSON line of figures, scored
with every asset under 1, 5, 10 and 20 train views left without a vector (TrainConfig.min_views).

    python -m benchmarks.study_quality --variants base min_views=10 loss=sigmoid --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time

from benchmarks.movielens import Sampling, load, without_rare, write_seasons
from film2vec.config import PairsConfig, SeasonsConfig, TrainConfig
from film2vec.evaluation.protocol import evaluate
from film2vec.seasons.sampler import negatives_plan
from film2vec.train.trainer import train


def base_settings() -> dict:
    """The defaults: SeasonsConfig's (3 seasons where it lets the run choose), pairs.user_weighting's and
    TrainConfig's (whose min_views the seasons take too: an asset with fewer train views takes no part in them)."""
    return {
        **dataclasses.asdict(SeasonsConfig()),
        "seasons": SeasonsConfig().seasons or 3,  # a fixed count: the study's seasons hold no slice to stop on
        "user_weighting": PairsConfig().user_weighting,
        **dataclasses.asdict(TrainConfig(device="cpu")),
    }


def run_variant(catalogue, settings: dict, seed: int) -> dict:
    seasons = SeasonsConfig(**{f.name: settings[f.name] for f in dataclasses.fields(SeasonsConfig)})
    sampling = Sampling(seasons, settings["user_weighting"], settings["min_views"])
    config = TrainConfig(**{f.name: settings[f.name] for f in dataclasses.fields(TrainConfig)})
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        write_seasons(f"{folder}/seasons", catalogue, sampling, settings["seasons"], seed)
        sampled = time.perf_counter()
        negatives = negatives_plan(seasons, catalogue.train_views)
        n_assets, seasons_drawn = len(catalogue.train_views), range(settings["seasons"])
        result = train(f"{folder}/seasons", seasons_drawn, n_assets, config, seed, negatives=negatives)
        trained = time.perf_counter()
    samples = sum(report.samples for report in result.history)
    figures = {}
    for min_views in sorted({config.min_views, 5, 10, 20}):
        vectors = without_rare(result.vectors, catalogue, max(min_views, sampling.min_views))
        scored = evaluate(vectors, catalogue.split, catalogue.genres)
        figures[f"min_views={min_views}"] = {key: round(value, 4) for key, value in scored.items()}
    return {
        **figures,
        "samples_per_second": round(samples / (trained - sampled)),
        "sample_seconds": round(sampled - started, 1),
        "train_seconds": round(trained - sampled, 1),
    }


def parse_change(text: str) -> dict:
    """'base' or 'key=value,key=value' with values read as JSON when they parse."""
    if text == "base":
        return {}
    change = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        try:
            change[key] = json.loads(value)
        except json.JSONDecodeError:
            change[key] = value
    return change


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["base"], help="'base' or key=value[,key=value]")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--set", default="", help="changes applied to the base of every variant")
    arguments = parser.parse_args()
    catalogue = load()
    base = {**base_settings(), **(parse_change(arguments.set) if arguments.set else {})}
    for variant in arguments.variants:
        settings = {**base, **parse_change(variant)}
        for seed in arguments.seeds:
            print(json.dumps({"variant": variant, "seed": seed, **run_variant(catalogue, settings, seed)}), flush=True)


if __name__ == "__main__":
    main()
