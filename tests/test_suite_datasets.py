"""The evaluation suite's derived datasets (benchmarks/suite_datasets.py) have the properties its docs state, on
the real MovieLens latest-small; pandas only, so the file runs in seconds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.race_als import MOVIELENS
from benchmarks.suite_datasets import (
    DENSE_ASSETS,
    DENSE_MIN_VIEWS,
    counts,
    dense,
    read_movies,
    read_ratings,
    recent,
    recent_cutoff,
    sparse,
    sparse_quota,
)

pytestmark = pytest.mark.skipif(
    not (MOVIELENS / "ratings.csv").is_file(),
    reason=f"MovieLens latest-small is not at {MOVIELENS} (../shared/data/ml-latest-small beside the repository)",
)


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    return read_ratings()


def pairs(views: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(views["user_id"], views["asset_id"]))


def test_ratings_read_as_every_view(ratings):
    assert counts(ratings["user_id"], ratings["asset_id"])["views"] == 100_836
    assert ratings["user_id"].nunique() == 610
    assert list(ratings.columns) == ["user_id", "asset_id", "viewed_at"]


def test_dense_keeps_the_top_assets_and_only_users_with_enough_of_them(ratings):
    kept = dense(ratings)
    by_views = ratings.groupby("asset_id").size()
    ranked = sorted(by_views.items(), key=lambda item: (-item[1], item[0]))
    top = {asset for asset, _ in ranked[:DENSE_ASSETS]}
    assert set(kept["asset_id"]) == top
    on_top = ratings[ratings["asset_id"].isin(top)]
    per_user = on_top.groupby("user_id").size()
    assert set(kept["user_id"]) == set(per_user[per_user >= DENSE_MIN_VIEWS].index)
    assert kept.groupby("user_id").size().min() >= DENSE_MIN_VIEWS
    # every view of a kept user on a top asset stays, none other
    assert pairs(kept) == pairs(on_top[on_top["user_id"].isin(kept["user_id"])])
    assert counts(kept["user_id"], kept["asset_id"]) == {
        "users": 608,
        "assets": 1_500,
        "views": 71_509,
        "views_per_asset": 47.7,
        "views_per_user": 117.6,
    }


def test_sparse_quota_rule():
    assert sparse_quota(np.array([1, 2, 3, 4, 12, 13, 100])).tolist() == [1, 2, 3, 3, 3, 4, 25]


def test_sparse_keeps_each_users_quota_of_their_own_views(ratings):
    kept = sparse(ratings, seed=0)
    assert pairs(kept) <= pairs(ratings)
    per_user = ratings.groupby("user_id").size()
    kept_per_user = kept.groupby("user_id").size().reindex(per_user.index, fill_value=0)
    assert (kept_per_user.to_numpy() == np.minimum(per_user, np.maximum(3, np.ceil(per_user / 4)))).all()
    assert len(kept) == 25_433


def test_sparse_is_one_draw_per_seed_and_another_across_seeds(ratings):
    shuffled = ratings.sample(frac=1.0, random_state=7)
    assert pairs(sparse(ratings, seed=0)) == pairs(sparse(shuffled, seed=0))
    first, second = pairs(sparse(ratings, seed=0)), pairs(sparse(ratings, seed=1))
    assert len(first) == len(second)
    assert first != second


def test_recent_holds_every_view_of_the_last_three_years_and_none_older(ratings):
    kept = recent(ratings)
    latest = pd.Timestamp(int(ratings["viewed_at"].max()), unit="s")
    cutoff = recent_cutoff(ratings)
    assert pd.Timestamp(cutoff, unit="s") == latest - pd.DateOffset(years=3)
    assert kept["viewed_at"].min() >= cutoff
    assert pairs(kept) == pairs(ratings[ratings["viewed_at"] >= cutoff])
    assert len(kept) == 24_102 and kept["user_id"].nunique() == 137


def test_movies_read_with_quoted_titles():
    movies = read_movies().set_index("asset_id")
    assert len(movies) == 9_742
    assert movies.loc[11, "title"] == "American President, The (1995)"
    assert movies.loc[11, "genres"] == "Comedy|Drama|Romance"
