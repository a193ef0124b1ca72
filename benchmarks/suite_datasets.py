"""The evaluation suite's datasets: MovieLens latest-small as it is, three derivations of it, and the
project's synthetic catalogue, each of a different character, so a change is measured on more than one shape.

- movielens: ../shared/data/ml-latest-small as it is (film2vec reads the folder);
- dense: the views of the 1,500 most-viewed assets (equal counts: the lower asset id first), then only the
  users with at least 10 of them: popular heads, long histories;
- sparse: each user's views thinned to a random min(n, max(3, ceil(25% of n))), seed 0: short histories;
- recent: the views of the 3 calendar years before the latest view: new releases, few users;
- synthetic: `film2vec generate` with users = 100,000 / the generator's default views per user, every other
  generator setting at its default: planted genres;
- synthetic-5m: the same at 5,000,000 views (opt-in: about 15 minutes a seed).

The derived sets are functions of the ratings (pandas, no Spark), written once under DIR/datasets/NAME as
events.csv (user_id, asset_id, viewed_at in Unix seconds) and metadata.csv (asset_id, title, genres as
'|'-separated text, the assets of the events only), with dataset.json (counts, how and from which commit it
was built) written last: a folder without it is built again. Never committed as data: the licence of
MovieLens allows redistribution only under its own terms.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.race_als import MOVIELENS, REPOSITORY, synthetic_events

DENSE_ASSETS = 1_500
DENSE_MIN_VIEWS = 10
SPARSE_SHARE = 0.25
SPARSE_MIN_VIEWS = 3
SPARSE_SEED = 0
RECENT_YEARS = 3
SYNTHETIC_VIEWS = {"synthetic": 100_000, "synthetic-5m": 5_000_000}
DERIVED = ("dense", "sparse", "recent")
DATASETS = ("movielens", *DERIVED, *SYNTHETIC_VIEWS)


def read_ratings(folder: Path = MOVIELENS) -> pd.DataFrame:
    """ratings.csv of an ml-latest folder as views (user_id, asset_id, viewed_at in Unix seconds); every
    rating is a view, as film2vec reads it."""
    ratings = pd.read_csv(folder / "ratings.csv", usecols=["userId", "movieId", "timestamp"])
    return ratings.rename(columns={"userId": "user_id", "movieId": "asset_id", "timestamp": "viewed_at"})


def read_movies(folder: Path = MOVIELENS) -> pd.DataFrame:
    """movies.csv of an ml-latest folder as metadata (asset_id, title, genres as '|'-separated text)."""
    return pd.read_csv(folder / "movies.csv").rename(columns={"movieId": "asset_id"})


def dense(views: pd.DataFrame, assets: int = DENSE_ASSETS, min_views: int = DENSE_MIN_VIEWS) -> pd.DataFrame:
    """The views of the `assets` most-viewed assets (equal counts: the lower asset id first), then only the users
    who keep at least `min_views` of them (one pass: an asset may end with fewer views than it was ranked by)."""
    counts = views.groupby("asset_id").size().rename("count").reset_index()
    top = counts.sort_values(["count", "asset_id"], ascending=[False, True]).head(assets)["asset_id"]
    kept = views[views["asset_id"].isin(top)]
    per_user = kept.groupby("user_id")["asset_id"].transform("size")
    return kept[per_user >= min_views].reset_index(drop=True)


def sparse_quota(
    views_of_user: pd.Series | np.ndarray, share: float = SPARSE_SHARE, minimum: int = SPARSE_MIN_VIEWS
) -> np.ndarray:
    """How many of a user's n views the sparse set keeps: min(n, max(minimum, ceil(share × n)))."""
    n = np.asarray(views_of_user)
    return np.minimum(n, np.maximum(minimum, np.ceil(share * n).astype(np.int64)))


def sparse(
    views: pd.DataFrame, seed: int = SPARSE_SEED, share: float = SPARSE_SHARE, minimum: int = SPARSE_MIN_VIEWS
) -> pd.DataFrame:
    """Each user's views thinned to a uniformly random `sparse_quota` of them; the same views for the same seed
    whatever the input's row order (the draw runs over the views in (user, time, asset) order)."""
    ordered = views.sort_values(["user_id", "viewed_at", "asset_id"]).reset_index(drop=True)
    draw = np.random.default_rng(seed).random(len(ordered))
    shuffled = ordered.assign(draw=draw).sort_values(["user_id", "draw"])
    quota = sparse_quota(shuffled.groupby("user_id")["asset_id"].transform("size"), share, minimum)
    kept = shuffled[shuffled.groupby("user_id").cumcount().to_numpy() < quota]
    return kept.drop(columns="draw").sort_index().reset_index(drop=True)


def recent_cutoff(views: pd.DataFrame, years: int = RECENT_YEARS) -> int:
    """Unix seconds `years` calendar years before the latest view."""
    latest = pd.Timestamp(int(views["viewed_at"].max()), unit="s")
    return int((latest - pd.DateOffset(years=years)).timestamp())


def recent(views: pd.DataFrame, years: int = RECENT_YEARS) -> pd.DataFrame:
    """The views at or after `recent_cutoff`: what the catalogue's last years watched."""
    return views[views["viewed_at"] >= recent_cutoff(views, years)].reset_index(drop=True)


def counts(user_id: pd.Series, asset_id: pd.Series) -> dict:
    """Users, assets, views and the mean views per asset and per user of a set of views."""
    users, assets, views = int(user_id.nunique()), int(asset_id.nunique()), len(user_id)
    return {
        "users": users,
        "assets": assets,
        "views": views,
        "views_per_asset": round(views / assets, 1),
        "views_per_user": round(views / users, 1),
    }


def git_state() -> dict:
    """The commit of the repository, whether its tree holds uncommitted changes, and which (git status lines)."""
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPOSITORY, capture_output=True, text=True)
    status = subprocess.run(["git", "status", "--porcelain"], cwd=REPOSITORY, capture_output=True, text=True)
    changes = status.stdout.splitlines()
    return {"commit": commit.stdout.strip(), "dirty": bool(changes), "changes": changes}


def _derived(name: str, folder: Path) -> dict:
    """Write a derived set's events.csv and metadata.csv; its description."""
    ratings = read_ratings()
    views = {"dense": dense, "sparse": sparse, "recent": recent}[name](ratings)
    folder.mkdir(parents=True, exist_ok=True)
    views.to_csv(folder / "events.csv", index=False)
    movies = read_movies()
    movies[movies["asset_id"].isin(views["asset_id"])].to_csv(folder / "metadata.csv", index=False)
    settings = {
        "dense": {"assets": DENSE_ASSETS, "min_views": DENSE_MIN_VIEWS},
        "sparse": {"share": SPARSE_SHARE, "minimum": SPARSE_MIN_VIEWS, "seed": SPARSE_SEED},
        "recent": {"years": RECENT_YEARS, "cutoff": recent_cutoff(ratings)},
    }[name]
    return {
        "flags": ["--events", str(folder / "events.csv"), "--metadata", str(folder / "metadata.csv")],
        "settings": settings,
        "counts": counts(views["user_id"], views["asset_id"]),
    }


def _synthetic(name: str, folder: Path) -> dict:
    """Generate the synthetic catalogue at the suite's views with the generator's current defaults; its
    description."""
    from film2vec.config import SyntheticConfig
    from film2vec.tables import read_without_spark

    defaults = SyntheticConfig()
    settings = argparse.Namespace(
        views=SYNTHETIC_VIEWS[name],
        views_per_user=defaults.views_per_user,
        catalogue_size=defaults.catalogue_size,
        genres=defaults.genres,
    )
    flags = synthetic_events(folder, settings)
    events = read_without_spark(flags[1], "events", ["user_id", "asset_id"]).to_pandas()
    return {
        "flags": flags,
        "settings": {**vars(defaults), "users": max(2, round(settings.views / settings.views_per_user))},
        "counts": counts(events["user_id"], events["asset_id"]),
    }


def dataset(name: str, out: Path) -> dict:
    """A suite dataset's evaluate flags (`flags`), counts and provenance, built under out/datasets/NAME when
    missing; prints its counts."""
    if name == "movielens":
        if not (MOVIELENS / "ratings.csv").is_file():
            raise SystemExit(f"MovieLens latest-small not found at {MOVIELENS}")
        ratings = read_ratings()
        built = {"flags": ["--events", str(MOVIELENS)], "counts": counts(ratings["user_id"], ratings["asset_id"])}
    else:
        folder = out / "datasets" / name
        described = folder / "dataset.json"
        if described.is_file():
            built = json.loads(described.read_text())
        else:
            built = {**(_synthetic if name in SYNTHETIC_VIEWS else _derived)(name, folder), **git_state()}
            described.write_text(json.dumps(built, indent=2))
            print(f"built {name} under {folder}", flush=True)
    shown = built["counts"]
    print(
        f"{name}: {shown['users']:,} users, {shown['assets']:,} assets, {shown['views']:,} views "
        f"({shown['views_per_asset']:,} per asset, {shown['views_per_user']:,} per user)",
        flush=True,
    )
    return built
