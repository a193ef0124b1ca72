"""The race against Spark MLlib ALS: both as whole processes on the same events, then both figures.

    python -m benchmarks.race_als --out DIR [--datasets movielens synthetic dense sparse recent]
        [--views 5000000] [--catalogue-size 1000] [--genres 10] [--views-per-user 30] [--dim 64] [--no-figures]

Per dataset, one fresh process each, one after the other:
  1. `film2vec run --events E`: film2vec's vectors from every view (timed);
  2. `python -m benchmarks.race_als als --events E`: Spark ALS's item factors from every view, the same events
     read and validated by film2vec's reader (als_vectors; timed);
  3. `film2vec evaluate --baseline als --events E`: both models on the protocol's held-out split, scored by the
     same code (skipped with --no-figures).
The datasets are MovieLens latest-small (../shared/data/ml-latest-small from the repository root), a synthetic
catalogue of the project's generator with --views views (written once by `film2vec generate`, not timed), and
the suite's sets derived from MovieLens (dense, sparse, recent: benchmarks/suite_datasets.py, built once under
DIR/datasets).
Prints each process's wall time, film2vec's time over ALS's, and the figures side by side.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

from film2vec.config import SyntheticConfig

REPOSITORY = Path(__file__).resolve().parents[1]
MOVIELENS = REPOSITORY.parent / "shared" / "data" / "ml-latest-small"
FIGURES = ("recall_at_20", "ndcg_at_20", "genre_p_at_10")


def timed(command: list[str]) -> tuple[float, str]:
    """Run a command from the repository root; its wall time and stdout. Stops the race when it fails."""
    print("$ " + " ".join(command), flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"failed with exit {done.returncode} after {seconds:.0f} s:\n{done.stderr[-4000:]}")
    print(f"  {seconds:.1f} s", flush=True)
    return seconds, done.stdout


def synthetic_events(out: Path, arguments: argparse.Namespace) -> list[str]:
    """Write the synthetic catalogue once (views ≈ users × views per user) and return its --events flags."""
    folder = out / "synthetic-data"
    users = max(2, round(arguments.views / arguments.views_per_user))
    flags = ["--users", str(users), "--catalogue-size", str(arguments.catalogue_size)]
    flags += ["--genres", str(arguments.genres), "--views-per-user", str(arguments.views_per_user)]
    if not (folder / "synthetic" / "events" / "_delta_log").is_dir():
        seconds, output = timed(
            [sys.executable, "-m", "film2vec.cli", "generate", "--out", str(folder), *flags, "--json"]
        )
        print(f"generated {json.loads(output)['views']:,} views in {seconds:.0f} s", flush=True)
    return ["--events", str(folder / "synthetic" / "events"), "--metadata", str(folder / "synthetic" / "assets")]


def race(name: str, events: list[str], out: Path, arguments: argparse.Namespace) -> dict:
    """Both whole processes on the events, then (unless --no-figures) the protocol's figures of both."""
    common = [*events, "--dim", str(arguments.dim), "--seed", str(arguments.seed)]
    film2vec_seconds, _ = timed(
        [sys.executable, "-m", "film2vec.cli", "run", "--out", str(out / name / "film2vec"), *common]
    )
    als_seconds, _ = timed(
        [sys.executable, "-m", "benchmarks.race_als", "als", "--out", str(out / name / "als"), *common]
    )
    result = {"film2vec_run_seconds": film2vec_seconds, "als_seconds": als_seconds}
    if not arguments.no_figures:
        _, output = timed(
            [
                *[sys.executable, "-m", "film2vec.cli", "evaluate", "--baseline", "als", "--json"],
                *["--out", str(out / name / "evaluate"), *common],
            ]
        )
        summary = json.loads(output)
        result.update(
            film2vec=summary["figures"],
            film2vec_recommend=summary["recommend_figures"],
            als=summary["baseline"]["figures"],
            als_recommend=summary["baseline"]["recommend_figures"],
            evaluate_seconds={"film2vec": summary["film2vec_seconds"], "als": summary["baseline"]["seconds"]},
        )
    return result


def report(name: str, result: dict) -> str:
    """One dataset's race as a table: wall times, their ratio, and the figures when measured."""
    ratio = result["film2vec_run_seconds"] / result["als_seconds"]
    rows = [
        ("film2vec", result["film2vec_run_seconds"], result.get("film2vec", {})),
        ("film2vec recommend()", math.nan, result.get("film2vec_recommend", {})),
        ("Spark ALS item factors", result["als_seconds"], result.get("als", {})),
        ("Spark ALS recommend()", math.nan, result.get("als_recommend", {})),
    ]
    lines = [f"## {name}: film2vec run / ALS = {ratio:.2f}x"]
    lines.append(f"{'':<24}{'whole process s':>16}" + "".join(f"{figure:>15}" for figure in FIGURES))
    for label, seconds, figures in rows:
        cells = "".join(f"{figures.get(figure, math.nan):>15.4f}" for figure in FIGURES)
        lines.append(f"{label:<24}" + (f"{seconds:>16.1f}" if math.isfinite(seconds) else " " * 16) + cells)
    return "\n".join(lines)


def als_vectors(spark, config) -> dict:
    """ALS's counterpart of `film2vec run`, for a race of whole processes: the events validated as film2vec
    validates them, ALS (rank --dim) fitted on every view, its item factors written to DIR/als_embeddings
    (asset_id, vector), a table `film2vec evaluate --embeddings` can score."""
    from film2vec import tables
    from film2vec.config import ConfigError
    from film2vec.evaluation.baselines import fit_als, index_users
    from film2vec.ingest.readers import ingest_source, source_of

    if not config.data.events:
        raise ConfigError("ALS vectors: give the events to fit on, --events PATH")
    found = ingest_source(spark, source_of(config.data))
    views = found.views.join(found.assets.select("asset_id", "asset_idx"), "asset_id")
    factors = fit_als(index_users(views), config.train.dim, config.evaluate, config.seed)
    asset_ids = found.assets.orderBy("asset_idx").select("asset_id").toArrow().column("asset_id")
    found.release()
    items = tables.embeddings_table(asset_ids.take(factors.assets), factors.asset_vectors)
    tables.of(config, "als_embeddings").write(items)
    return {
        "events": config.data.events,
        "users_with_vectors": len(factors.users),
        "assets_with_vectors": len(factors.assets),
        "embeddings": config.out("als_embeddings"),
    }


def als_process(flags: list[str]) -> None:
    """The ALS side of the race as a whole process: Spark started, events read, ALS fitted, factors written."""
    from film2vec import cli
    from film2vec.spark import get_spark
    from film2vec.tables import uses_metastore

    config = cli.config_from(cli.parser().parse_args(["evaluate", *flags]))
    print(json.dumps(als_vectors(get_spark(config.spark, metastore=uses_metastore(config)), config), indent=2))


def main() -> None:
    if sys.argv[1:2] == ["als"]:
        als_process(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for every process's outputs")
    from benchmarks.suite_datasets import DERIVED, dataset

    parser.add_argument(
        "--datasets", nargs="+", default=["movielens", "synthetic"], choices=["movielens", "synthetic", *DERIVED]
    )
    parser.add_argument("--views", type=int, default=5_000_000, help="synthetic views (default: the issue's 5M)")
    generator = SyntheticConfig()  # the generator's defaults: the catalogue of the suite's synthetic-5m
    parser.add_argument("--catalogue-size", type=int, default=generator.catalogue_size, help="synthetic assets")
    parser.add_argument("--genres", type=int, default=generator.genres, help="synthetic planted genres")
    parser.add_argument(
        "--views-per-user", type=float, default=generator.views_per_user, help="synthetic mean views per user"
    )
    parser.add_argument("--dim", type=int, default=64, help="film2vec's --dim and ALS's rank")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-figures", action="store_true", help="time the two processes only, skip evaluate")
    arguments = parser.parse_args()
    out = Path(arguments.out).resolve()
    results = {}
    for name in arguments.datasets:
        if name == "movielens" and not (MOVIELENS / "ratings.csv").is_file():
            raise SystemExit(f"MovieLens latest-small not found at {MOVIELENS}")
        if name == "movielens":
            events = ["--events", str(MOVIELENS)]
        elif name == "synthetic":
            events = synthetic_events(out, arguments)
        else:
            events = dataset(name, out)["flags"]
        results[name] = race(name, events, out, arguments)
        print(report(name, results[name]), flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
