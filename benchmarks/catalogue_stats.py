"""The synthetic catalogue's shape beside MovieLens latest-small's: is the generator's viewing realistic?

    python -m benchmarks.catalogue_stats [--views 100836] [--seed 0] [--movielens DIR]

Prints film2vec.ingest.synthetic.catalogue_statistics (views per user and per asset at percentiles, the Gini of views
over assets, the top 1% of assets' share, the share of views tied in time with another of the user's) for the
synthetic catalogue at the defaults, at about --views views (default: as many as latest-small has; users are
added at the default views per user), and for latest-small's ratings (each rating a view).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from benchmarks.movielens import MOVIELENS
from film2vec.config import SyntheticConfig
from film2vec.ingest.synthetic import catalogue_statistics, generate_catalogue


def synthetic_statistics(config: SyntheticConfig, seed: int) -> dict[str, float]:
    catalogue = generate_catalogue(config, seed)
    return catalogue_statistics(catalogue.user_id, catalogue.asset_id, catalogue.viewed_at)


def movielens_statistics(folder: Path) -> dict[str, float]:
    if not (folder / "ratings.csv").is_file():
        raise SystemExit(f"MovieLens latest-small not found at {folder}: pass --movielens DIR")
    ratings = pd.read_csv(folder / "ratings.csv", usecols=["userId", "movieId", "timestamp"])
    return catalogue_statistics(ratings.userId.to_numpy(), ratings.movieId.to_numpy(), ratings.timestamp.to_numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--views", type=int, default=None, help="synthetic views to aim at (default: latest-small's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--movielens", type=Path, default=MOVIELENS, help="the ml-latest-small folder")
    args = parser.parse_args()
    movielens = movielens_statistics(args.movielens)
    defaults = SyntheticConfig()
    views = args.views or int(movielens["views"])
    scaled = SyntheticConfig(users=max(2, round(views / defaults.views_per_user)))
    columns = {
        f"synthetic, {defaults.users:,} users": synthetic_statistics(defaults, args.seed),
        f"synthetic, {scaled.users:,} users": synthetic_statistics(scaled, args.seed),
        "ml-latest-small": movielens,
    }
    print(f"{'statistic':<24}" + "".join(f"{name:>26}" for name in columns))
    for statistic in movielens:
        print(f"{statistic:<24}" + "".join(f"{number(found[statistic]):>26}" for found in columns.values()))


def number(value: float) -> str:
    """Counts as whole numbers, shares and small percentiles with three decimals."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3f}"


if __name__ == "__main__":
    main()
