"""The planted catalogue: exact checks on the small kernels, statistical checks on the generated views."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from film2vec.config import SyntheticConfig
from film2vec.synthetic import (
    SyntheticCatalogue,
    contains_sorted,
    draw_tastes,
    first_occurrences,
    generate_catalogue,
    genre_names,
    rank_within_runs,
)

CONFIG = SyntheticConfig()


@pytest.fixture(scope="module")
def catalogue() -> SyntheticCatalogue:
    return generate_catalogue(CONFIG, seed=0)


def views_per_user(catalogue: SyntheticCatalogue) -> np.ndarray:
    return np.bincount(catalogue.user_id)[1:]


def top_genre_share(catalogue: SyntheticCatalogue) -> float:
    """Share of all views that fall in their user's most watched genre."""
    genre = catalogue.planted_genre[catalogue.asset_id - 1]
    views_by_genre = np.zeros((catalogue.user_id.max() + 1, len(catalogue.genre_names)), dtype=np.int64)
    np.add.at(views_by_genre, (catalogue.user_id, genre), 1)
    return views_by_genre.max(axis=1).sum() / len(genre)


def test_first_occurrences_keeps_draw_order():
    assert first_occurrences(np.array([5, 3, 5, 1, 3, 9])).tolist() == [5, 3, 1, 9]


def test_rank_within_runs():
    assert rank_within_runs(np.array([2, 2, 3, 7, 7, 7])).tolist() == [0, 1, 0, 0, 1, 2]


def test_contains_sorted():
    found = contains_sorted(np.array([1, 4, 9]), np.array([0, 4, 5, 9, 10]))
    assert found.tolist() == [False, True, False, True, False]
    assert not contains_sorted(np.array([], dtype=np.int64), np.array([3])).any()


@pytest.mark.parametrize("genres", [1, 2, 3, 10])
def test_tastes_are_distinct_genres_with_weights(genres):
    liked, taste_cumulative = draw_tastes(1_000, genres, np.random.default_rng(0))
    assert liked.shape == taste_cumulative.shape == (1_000, min(3, genres))
    assert liked.min() >= 0 and liked.max() < genres
    assert all(len(set(row)) == len(row) for row in liked.tolist())
    assert np.all(np.diff(taste_cumulative, axis=1) >= 0)
    np.testing.assert_allclose(taste_cumulative[:, -1], 1.0)
    if genres >= 3:
        liked_two = taste_cumulative[:, 1] == 1.0
        assert 0.3 < liked_two.mean() < 0.7


def test_genre_names_go_beyond_the_built_in_list():
    names = genre_names(15)
    assert names[:2] == ("Comedy", "Crime")
    assert names[-1] == "Genre 15"
    assert len(set(names)) == 15


def test_same_seed_same_views_other_seed_other_views(catalogue):
    again = generate_catalogue(CONFIG, seed=0)
    other = generate_catalogue(CONFIG, seed=1)
    for name in ("user_id", "asset_id", "viewed_at", "planted_genre", "titles"):
        np.testing.assert_array_equal(getattr(again, name), getattr(catalogue, name))
    assert len(other.asset_id) != len(catalogue.asset_id) or np.any(other.asset_id != catalogue.asset_id)
    assert np.any(other.planted_genre != catalogue.planted_genre)


def test_views_are_distinct_user_asset_pairs(catalogue):
    keys = catalogue.user_id * (CONFIG.catalogue_size + 1) + catalogue.asset_id
    assert len(np.unique(keys)) == len(keys)


def test_ids_and_times_are_in_range(catalogue):
    np.testing.assert_array_equal(catalogue.catalogue_ids, np.arange(1, CONFIG.catalogue_size + 1))
    assert np.isin(catalogue.asset_id, catalogue.catalogue_ids).all()
    np.testing.assert_array_equal(np.unique(catalogue.user_id), np.arange(1, CONFIG.users + 1))
    for name in ("user_id", "asset_id", "viewed_at", "catalogue_ids"):
        assert getattr(catalogue, name).dtype == np.int64
    assert catalogue.planted_genre.dtype == np.int32
    assert catalogue.viewed_at.min() >= 1_735_689_600  # 2025-01-01
    assert catalogue.viewed_at.max() < 1_767_225_600  # 2026-01-01


def test_view_count_is_near_the_configured_mean(catalogue):
    expected = CONFIG.users * CONFIG.views_per_user
    assert abs(len(catalogue.user_id) - expected) < 0.1 * expected
    assert views_per_user(catalogue).min() >= 2


def test_some_users_watch_far_more_than_others(catalogue):
    counts = views_per_user(catalogue)
    assert counts.max() > 5 * np.median(counts)


def test_users_watch_mostly_their_genres(catalogue):
    share = top_genre_share(catalogue)
    assert share > 4 / CONFIG.genres
    untasted = generate_catalogue(SyntheticConfig(off_taste_share=1.0), seed=0)
    assert share > 1.5 * top_genre_share(untasted)


def test_popularity_is_skewed(catalogue):
    views_per_asset = np.sort(np.bincount(catalogue.asset_id, minlength=CONFIG.catalogue_size + 1)[1:])
    top_tenth = views_per_asset[-CONFIG.catalogue_size // 10 :]
    assert top_tenth.sum() > 0.25 * len(catalogue.asset_id)


def test_titles_rank_each_genre_by_popularity(catalogue):
    views_per_asset = np.bincount(catalogue.asset_id - 1, minlength=CONFIG.catalogue_size)
    for genre, name in enumerate(catalogue.genre_names):
        members = np.flatnonzero(catalogue.planted_genre == genre)
        titles = set(catalogue.titles[members])
        assert titles == {f"{name} #{rank}" for rank in range(1, len(members) + 1)}
        assert catalogue.titles[members[np.argmax(views_per_asset[members])]] == f"{name} #1"
    sizes = np.bincount(catalogue.planted_genre)
    assert sizes.max() - sizes.min() <= 1


def test_chunks_cover_every_user_once():
    config = SyntheticConfig(users=500, views_per_user=20.0)
    chunked = generate_catalogue(config, seed=3, views_per_chunk=1_000)
    keys = chunked.user_id * (config.catalogue_size + 1) + chunked.asset_id
    assert len(np.unique(keys)) == len(keys)
    np.testing.assert_array_equal(np.unique(chunked.user_id), np.arange(1, config.users + 1))
    assert abs(len(keys) - config.users * config.views_per_user) < 0.1 * config.users * config.views_per_user


def test_events_table_schema(catalogue):
    events = catalogue.events_table()
    assert events.schema == pa.schema(
        [("user_id", pa.int64()), ("asset_id", pa.int64()), ("viewed_at", pa.timestamp("us", tz="UTC"))]
    )
    assert events.num_rows == len(catalogue.user_id)
    first_view = events.column("viewed_at")[0].value
    assert first_view == catalogue.viewed_at[0] * 1_000_000


def test_assets_table_schema(catalogue):
    assets = catalogue.assets_table()
    assert assets.schema == pa.schema(
        [("asset_id", pa.int64()), ("title", pa.string()), ("genres", pa.list_(pa.string()))]
    )
    assert assets.num_rows == CONFIG.catalogue_size
    planted = [[catalogue.genre_names[g]] for g in catalogue.planted_genre]
    assert assets.column("genres").to_pylist() == planted
    assert assets.column("title").to_pylist() == catalogue.titles.tolist()
