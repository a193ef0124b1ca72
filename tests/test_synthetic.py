"""The planted catalogue: exact checks on the small kernels, statistical checks on the generated views."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy.stats import spearmanr

from film2vec.config import SyntheticConfig
from film2vec.ingest.synthetic import (
    DAY,
    YEAR_END,
    YEAR_START,
    SyntheticCatalogue,
    add_distinct_genres,
    binge_sessions,
    catalogue_statistics,
    contains_sorted,
    draw_tastes,
    first_occurrences,
    generate_catalogue,
    genre_names,
    genre_shares,
    genre_sizes,
    rank_within_runs,
    search_within,
)

CONFIG = SyntheticConfig()
ONE_GENRE_ON_TASTE = {"multi_genre_share": 0.0, "off_taste_share": 0.0, "noise_share": 0.0}


@pytest.fixture(scope="module")
def catalogue() -> SyntheticCatalogue:
    return generate_catalogue(CONFIG, seed=0)


def views_per_user(catalogue: SyntheticCatalogue) -> np.ndarray:
    return np.bincount(catalogue.user_id)[1:]


def views_by_genre(catalogue: SyntheticCatalogue, user: np.ndarray, asset: np.ndarray) -> np.ndarray:
    """users × genres: the views of each user (`user` row indices) on assets of each genre (own genre only)."""
    counts = np.zeros((catalogue.user_id.max() + 1, len(catalogue.genre_names)))
    np.add.at(counts, (user, catalogue.planted_genre[asset - 1]), 1)
    return counts


def top_genre_lift(catalogue: SyntheticCatalogue) -> float:
    """How many times more a user's most watched genre takes of their views than of all views, over users:
    about 1 when users watch whatever is popular, whatever genres' sizes."""
    counts = views_by_genre(catalogue, catalogue.user_id, catalogue.asset_id)[1:]
    top = counts.argmax(axis=1)
    overall = counts.sum(axis=0) / counts.sum()
    return float(np.mean(counts.max(axis=1) / counts.sum(axis=1) / overall[top]))


def tied_share(catalogue: SyntheticCatalogue) -> float:
    return catalogue_statistics(catalogue.user_id, catalogue.asset_id, catalogue.viewed_at)["tied_view_share"]


def first_half_life_ratio(config: SyntheticConfig) -> tuple[float, SyntheticCatalogue]:
    """Views of the assets released during the year in the first half-life after release over those in the
    second (assets out for two half-lives before the year's end), and the catalogue."""
    catalogue = generate_catalogue(config, seed=0)
    released = catalogue.released_at[catalogue.asset_id - 1]
    half_life = config.release_half_life_days * DAY
    counted = (released >= YEAR_START) & (released < YEAR_END - 2 * half_life)
    age = (catalogue.viewed_at - released)[counted] / half_life
    return np.sum(age < 1) / np.sum((age >= 1) & (age < 2)), catalogue


def test_first_occurrences_keeps_draw_order():
    assert first_occurrences(np.array([5, 3, 5, 1, 3, 9])).tolist() == [0, 1, 3, 5]


def test_rank_within_runs():
    assert rank_within_runs(np.array([2, 2, 3, 7, 7, 7])).tolist() == [0, 1, 0, 0, 1, 2]


def test_contains_sorted():
    found = contains_sorted(np.array([1, 4, 9]), np.array([0, 4, 5, 9, 10]))
    assert found.tolist() == [False, True, False, True, False]
    assert not contains_sorted(np.array([], dtype=np.int64), np.array([3])).any()


def test_search_within_is_searchsorted_on_each_span():
    values = np.array([1.0, 2.0, 2.0, 5.0, 0.5, 0.7, 3.0])
    low, high = np.array([0, 0, 0, 4, 4, 3]), np.array([4, 4, 4, 7, 7, 3])
    target = np.array([0.0, 2.0, 9.0, 0.6, 3.0, 1.0])
    expected = [lo + np.searchsorted(values[lo:hi], t, side="right") for lo, hi, t in zip(low, high, target)]
    assert search_within(values, low, high, target).tolist() == expected == [0, 3, 4, 5, 7, 3]


@pytest.mark.parametrize("genres", [1, 2, 3, 10])
def test_tastes_are_distinct_genres_with_weights(genres):
    shares = genre_shares(SyntheticConfig(genres=genres))
    liked, early, late = draw_tastes(1_000, shares, 0.5, np.random.default_rng(0))
    assert liked.shape == early.shape == late.shape == (1_000, min(3, genres))
    assert liked.min() >= 0 and liked.max() < genres
    assert all(len(set(row)) == len(row) for row in liked.tolist())
    for weights in (early, late):
        assert np.all(weights >= 0)
        np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    if genres >= 3:
        liked_two = (early > 0).sum(axis=1) == 2
        assert 0.3 < liked_two.mean() < 0.7
        assert np.any((early == 0) & (late > 0))  # drift may take a user to a genre they did not watch at first


def test_distinct_genres_are_drawn_by_share():
    shares = np.array([0.5, 0.3, 0.15, 0.05])
    drawn = add_distinct_genres(np.zeros((20_000, 1), dtype=np.int64), 2, shares, np.random.default_rng(1))
    assert all(len(set(row)) == 3 for row in drawn[:2_000].tolist()) and drawn[:, 0].tolist() == [0] * 20_000
    second = np.bincount(drawn[:, 1], minlength=4) / len(drawn)  # ∝ the shares of genres 1, 2, 3
    np.testing.assert_allclose(second, [0, 0.6, 0.3, 0.1], atol=0.02)


def test_genres_are_zipf_sized_and_zipf_watched(catalogue):
    sizes = genre_sizes(1_000, genre_shares(CONFIG))
    assert sizes.sum() == 1_000 and np.all(np.diff(sizes) <= 0) and sizes[0] > 5 * sizes[-1]
    assert genre_sizes(1_000, genre_shares(SyntheticConfig(genre_exponent=0.0))).tolist() == [100] * 10
    assert genre_sizes(3, genre_shares(SyntheticConfig(genres=5))).tolist() == [1, 1, 1, 0, 0]
    views = np.bincount(catalogue.planted_genre[catalogue.asset_id - 1], minlength=CONFIG.genres)
    assert views[0] > 2 * views[-1] and np.corrcoef(np.log(views), np.log(np.arange(1, 11)))[0, 1] < -0.9


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
    untasted = generate_catalogue(SyntheticConfig(off_taste_share=1.0), seed=0)
    assert top_genre_lift(catalogue) > 1.5 * top_genre_lift(untasted)


def test_tastes_drift_from_first_views_to_last():
    """Each user's first and last third of views (in time) fall in other genres more often with drift (views
    off taste and assets of several genres left out, so that a view's genre is the user's taste then)."""

    def distance(drift: float) -> float:
        config = SyntheticConfig(
            users=500, views_per_user=60.0, heavy_user_share=0.0, taste_drift=drift, **ONE_GENRE_ON_TASTE
        )
        catalogue = generate_catalogue(config, seed=0)
        order = np.lexsort((catalogue.viewed_at, catalogue.user_id))
        user, asset = catalogue.user_id[order], catalogue.asset_id[order]
        position = rank_within_runs(user) / np.bincount(user)[user]
        early = views_by_genre(catalogue, user[position < 1 / 3], asset[position < 1 / 3])
        late = views_by_genre(catalogue, user[position >= 2 / 3], asset[position >= 2 / 3])
        many = np.bincount(user) >= 9  # three views at least in each third
        mix = [counts[many] / counts[many].sum(axis=1, keepdims=True) for counts in (early, late)]
        return float(np.mean(np.abs(mix[0] - mix[1]).sum(axis=1) / 2))  # total variation, averaged over users

    assert distance(1.0) > distance(0.0) + 0.1


def test_views_bunch_after_release_and_never_precede_it():
    ratio, catalogue = first_half_life_ratio(CONFIG)
    assert np.all(catalogue.viewed_at >= catalogue.released_at[catalogue.asset_id - 1])
    assert ratio > 1.4
    lasting, _ = first_half_life_ratio(SyntheticConfig(release_boost=0.0))
    assert 0.8 < lasting < 1.3  # a little over 1: each asset's share thins as more come out


def test_back_catalogue_is_out_before_the_views_and_the_rest_comes_out_during_the_year(catalogue):
    back = catalogue.released_at < YEAR_START
    assert abs(back.mean() - CONFIG.back_catalogue_share) < 0.01
    assert catalogue.released_at.min() >= YEAR_START - (YEAR_END - YEAR_START)
    assert catalogue.released_at.max() < YEAR_END
    first_month = generate_catalogue(SyntheticConfig(back_catalogue_share=0.0), seed=0)
    assert first_month.released_at.min() < YEAR_START  # one asset at least is out for the first views


def test_each_user_views_within_an_active_period_as_long_as_configured():
    def median_span_days(active_days: float) -> float:
        catalogue = generate_catalogue(SyntheticConfig(users=500, active_days=active_days), seed=0)
        user_starts = np.flatnonzero(np.diff(catalogue.user_id, prepend=0))
        first, last = (extreme.reduceat(catalogue.viewed_at, user_starts) for extreme in (np.minimum, np.maximum))
        return float(np.median(last - first) / DAY)

    assert median_span_days(10.0) < 10 < 40 < median_span_days(120.0) < 120


def test_binges_tie_about_the_configured_share_of_views_and_none_without(catalogue):
    assert abs(tied_share(catalogue) - CONFIG.binge_share) < 0.04
    assert tied_share(generate_catalogue(SyntheticConfig(binge_share=0.0), seed=0)) < 0.001
    assert abs(tied_share(generate_catalogue(SyntheticConfig(binge_share=0.5), seed=0)) - 0.5) < 0.06


def test_binge_sessions_are_logged_at_their_last_views_time():
    user = np.array([1, 1, 1, 2, 2])
    viewed_at = np.array([30, 10, 20, 5, 7])
    always = binge_sessions(user, viewed_at, 0.99, np.random.default_rng(0))
    assert always.tolist() in ([30, 30, 30, 7, 7], [30, 20, 20, 7, 7], [30, 30, 30, 5, 7], [30, 10, 30, 7, 7])
    assert binge_sessions(user, viewed_at, 0.0, np.random.default_rng(0)).tolist() == viewed_at.tolist()
    assert np.all(always >= viewed_at)  # later, never earlier: a view stays after its release


def test_multi_genre_assets_carry_their_genres():
    catalogue = generate_catalogue(SyntheticConfig(users=50), seed=0)
    carried = (catalogue.planted_genres >= 0).sum(axis=1)
    assert abs(np.mean(carried > 1) - 0.5) < 0.05 and set(carried.tolist()) == {1, 2, 3}
    assert np.all(catalogue.planted_genres[:, 0] == catalogue.planted_genre)
    assert all(len(set(row[row >= 0])) == len(row[row >= 0]) for row in catalogue.planted_genres)
    single = generate_catalogue(SyntheticConfig(users=50, multi_genre_share=0.0), seed=0)
    assert np.all(single.planted_genres[:, 1:] == -1)


def test_noise_views_ignore_popularity(catalogue):
    def gini(config: SyntheticConfig) -> float:
        drawn = generate_catalogue(config, seed=0)
        return catalogue_statistics(drawn.user_id, drawn.asset_id, drawn.viewed_at)["asset_gini"]

    assert gini(SyntheticConfig(noise_share=1.0)) < 0.5 * gini(CONFIG)


def test_heavy_users_lengthen_the_tail_of_views_per_user():
    def tail(share: float) -> float:
        counts = views_per_user(generate_catalogue(SyntheticConfig(users=5_000, heavy_user_share=share), seed=0))
        return np.percentile(counts, 99) / np.median(counts)

    assert tail(0.05) > 1.5 * tail(0.0)


def test_catalogue_statistics_on_a_hand_made_table():
    user = np.array([1, 1, 1, 2, 2, 3])
    asset = np.array([7, 8, 9, 7, 8, 7])
    viewed_at = np.array([5, 5, 6, 5, 9, 5])
    found = catalogue_statistics(user, asset, viewed_at)
    assert found["views"] == 6 and found["users"] == 3 and found["assets"] == 3
    assert found["views_per_user_p50"] == 2 and found["views_per_user_max"] == 3
    assert found["views_per_asset_p50"] == 2 and found["views_per_asset_max"] == 3
    assert found["asset_gini"] == pytest.approx((-2 * 1 + 0 * 2 + 2 * 3) / (3 * 6))  # views per asset 1, 2, 3
    assert found["top_1pct_asset_share"] == pytest.approx(3 / 6)
    assert found["tied_view_share"] == pytest.approx(2 / 6)  # user 1's two views at 5; user 2's 5 is another user's


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
        rank = [int(title.rsplit("#", 1)[1]) for title in catalogue.titles[members]]
        assert spearmanr(rank, -views_per_asset[members]).statistic > 0.5  # by expected attention: views vary
    assert (
        np.bincount(catalogue.planted_genre).tolist()
        == genre_sizes(CONFIG.catalogue_size, genre_shares(CONFIG)).tolist()
    )


def test_chunks_cover_every_user_once():
    config = SyntheticConfig(users=2_000, views_per_user=20.0, heavy_user_share=0.0)  # a total near the mean
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
    planted = [[catalogue.genre_names[g] for g in row if g >= 0] for row in catalogue.planted_genres]
    assert all(genres[0] == catalogue.genre_names[g] for genres, g in zip(planted, catalogue.planted_genre))
    assert assets.column("genres").to_pylist() == planted
    assert assets.column("title").to_pylist() == catalogue.titles.tolist()
