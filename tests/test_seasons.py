"""The season sampler: frequencies, both walks in Spark against the in-process kernels, the driver's seasons
against Spark's, reruns, failures, pipelining."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F
from scipy import stats
from test_walks import VIEWS, bipartite_season, bipartite_transition, window_transition

from film2vec import cli
from film2vec.config import SeasonsConfig
from film2vec.errors import ExitCode, InputError
from film2vec.seasons.sampler import held_out_rows, onward_views_with_ties
from film2vec.seasons.spark_hash import xxhash64
from film2vec.seasons.stage import (
    SAMPLE_SCHEMA,
    WALKS,
    SeasonFeed,
    bipartite_lists,
    draws_on_driver,
    held_out_views,
    onward_views,
    season_sampler,
    view_tie,
    write_season,
)
from film2vec.seasons.walks import Negatives, draw_keys, stream_key
from film2vec.train.stream import read_season


def per_origin(samples: int) -> float:
    """The samples_per_view that gives each of the catalogue's five origins (a..e, 14 views) `samples` samples."""
    return samples * 5 / 14


EDGES = {("a", "b"): 1, ("a", "c"): 4, ("a", "d"): 10, ("b", "c"): 2, ("c", "d"): 3, ("d", "e"): 1}


@pytest.fixture(scope="module")
def catalogue(spark):
    """Pairs over assets a..f (f has no neighbour), and the VIEWS of test_walks with string user ids."""
    rows = [(a, b, w) for (a, b), w in EDGES.items()] + [(b, a, w) for (a, b), w in EDGES.items()]
    pairs = spark.createDataFrame(rows, "asset_a string, asset_b string, co_views long")
    viewers = {idx: sum(idx in assets for assets in VIEWS.values()) for idx in range(6)}
    assets = spark.createDataFrame(
        [(i, name, viewers[i]) for i, name in enumerate("abcdef")], "asset_idx int, asset_id string, views long"
    )
    views = spark.createDataFrame(
        [(f"u{user}", idx, at) for user, watched in VIEWS.items() for at, idx in enumerate(watched)],
        "user_id string, asset_idx int, at long",
    ).select("user_id", "asset_idx", F.timestamp_seconds(F.lit(1_000) + F.col("at")).alias("viewed_at"))
    return pairs, assets, views


def sampler(catalogue, seed: int = 42, **settings):
    """The co-view walk with stratified origins, drawn by Spark, unbounded (the tests ask thousands of samples of
    each of five origins), unless the settings say otherwise."""
    pairs, assets, views = catalogue
    defaults = {"walk": "coview", "origin_distribution": "stratified", "sampler": "spark"}
    config = SeasonsConfig(**{**defaults, "season_samples_per_asset": None, **settings})
    return season_sampler(config, seed, assets, pairs=pairs, views=views)


def season_rows(path: str, season: int) -> list[tuple]:
    table = DeltaTable(path).to_pyarrow_table(partitions=[("season", "=", str(season))])
    return sorted(zip(*(table.column(name).to_pylist() for name in ("origin", "target", "draw"))))


def test_coview_targets_match_co_views_and_negatives_avoid_both_ends(catalogue, tmp_path):
    path = str(tmp_path / "seasons")
    sampler(catalogue, samples_per_view=per_origin(4000), negatives=3, sample_partitions=3).write(0, path)
    rows = season_rows(path, 0)
    assert len(rows) == 5 * 4000  # assets a..e have neighbours, f has none
    from_a = np.array([target for origin, target, _ in rows if origin == 0])
    observed = np.bincount(from_a, minlength=4)[1:4]
    weights = np.array([EDGES["a", "b"], EDGES["a", "c"], EDGES["a", "d"]])
    assert stats.chisquare(observed, weights / weights.sum() * len(from_a)).pvalue > 0.001
    origin, target, draw = (np.array(column, dtype=np.int64) for column in zip(*rows))
    negatives = Negatives(3, 6).of_draws(stream_key(42, 0), origin, draw, target)  # as the trainer draws them
    assert not (negatives == origin[:, None]).any() and not (negatives == target[:, None]).any()
    assert negatives.shape == (len(rows), 3) and negatives.max() <= 5


@pytest.mark.parametrize("window", [0, 1])
def test_bipartite_walk_in_spark_equals_the_kernels_in_one_process(catalogue, tmp_path, window):
    path = str(tmp_path / "seasons")
    samples = 3000
    settings = {"walk": "bipartite", "samples_per_view": per_origin(samples), "negatives": 2, "context_window": window}
    sampler(catalogue, seed=3, **settings).write(0, path)
    rows = season_rows(path, 0)
    origin, sample, target, _ = bipartite_season(VIEWS, 6, samples, window=window)
    assert rows == sorted(zip(origin.tolist(), target.tolist(), draw_keys(origin, sample).tolist()))
    transition = window_transition(VIEWS, 6, window) if window else bipartite_transition(VIEWS, 6)
    from_d = np.bincount([t for o, t, _ in rows if o == 3], minlength=6)
    reachable = np.flatnonzero(transition[3])
    assert stats.chisquare(from_d[reachable], transition[3, reachable] * samples).pvalue > 0.001


@pytest.mark.parametrize(
    "settings",
    [
        {"walk": "coview", "origin_distribution": "views"},
        {"walk": "bipartite", "context_window": 0, "origin_distribution": "views"},
        {"walk": "bipartite", "context_window": 1},
        {"walk": "bipartite", "context_window": 1, "times": "some missing"},
        {"walk": "bipartite", "context_window": 1, "season_samples_per_asset": 100},  # cut from the head
    ],
)
def test_the_driver_draws_the_rows_spark_draws_in_draw_order(catalogue, tmp_path, settings):
    if settings.pop("times", None):  # user u2's views of assets 1 and 3 have no time
        pairs, assets, views = catalogue
        missing = (F.col("user_id") == "u2") & F.col("asset_idx").isin(1, 3)
        catalogue = pairs, assets, views.withColumn("viewed_at", F.when(~missing, F.col("viewed_at")))
    on_spark, on_driver = str(tmp_path / "spark"), str(tmp_path / "driver")
    sampler(catalogue, seed=5, samples_per_view=per_origin(400), negatives=2, sample_partitions=3, **settings).write(
        1, on_spark
    )
    driver = sampler(catalogue, seed=5, samples_per_view=per_origin(400), negatives=2, sampler="driver", **settings)
    assert driver.driver_lists is not None
    driver.write(1, on_driver)
    assert season_rows(on_driver, 1) == season_rows(on_spark, 1)
    draws = np.concatenate([batch.column("draw").to_numpy() for batch in read_season(on_driver, 1)])
    assert len(draws) == len(season_rows(on_spark, 1)) and np.all(np.diff(draws) > 0)


def test_auto_draws_on_the_driver_only_when_the_input_and_a_season_fit_the_limit(catalogue):
    pairs, _, views = catalogue  # 12 pair rows and 15 views over 6 assets: a season of samples_per_view × 15
    by_asset = np.array([4, 3, 3, 2, 2, 1])

    def fits(walk_input, rows=None, **settings):
        return draws_on_driver(SeasonsConfig(**settings), walk_input, by_asset, rows)

    assert fits(views, walk="bipartite", samples_per_view=1, driver_sampling_rows=15)
    assert not fits(views, walk="bipartite", samples_per_view=1, driver_sampling_rows=14)
    assert not fits(views, walk="bipartite", samples_per_view=1.1, driver_sampling_rows=15)
    # bounded at 2 samples per asset, 30 per view makes a season of 12, not 450
    assert fits(views, walk="bipartite", samples_per_view=30, season_samples_per_asset=2, driver_sampling_rows=15)
    assert fits(pairs, walk="coview", samples_per_view=0.8, driver_sampling_rows=12)
    assert not fits(pairs, walk="coview", sampler="spark")
    assert fits(pairs, walk="coview", sampler="driver", driver_sampling_rows=0)
    assert not fits(views, rows=16, walk="bipartite", samples_per_view=1, driver_sampling_rows=15)  # not counted again


@pytest.mark.parametrize(
    "settings",
    [
        {"walk": "coview", "origin_distribution": "views"},
        {"walk": "bipartite", "origin_distribution": "stratified"},
    ],
)
def test_rerun_is_identical_whatever_the_partitions_and_replaces_only_its_season(catalogue, tmp_path, settings):
    path = str(tmp_path / "seasons")
    two_partitions = sampler(
        catalogue, seed=7, samples_per_view=per_origin(50), negatives=2, sample_partitions=2, **settings
    )
    for season in (0, 1):
        two_partitions.write(season, path)
    first, second = season_rows(path, 0), season_rows(path, 1)
    assert first != second

    sampler(catalogue, seed=7, samples_per_view=per_origin(50), negatives=2, sample_partitions=5, **settings).write(
        0, path
    )
    assert season_rows(path, 0) == first
    assert season_rows(path, 1) == second


def test_a_season_write_that_fails_midway_leaves_the_season_as_it_was(catalogue, tmp_path):
    path = str(tmp_path / "seasons")
    seasons = sampler(catalogue, samples_per_view=per_origin(200), negatives=2, sample_partitions=4)
    seasons.write(0, path)
    before, version = season_rows(path, 0), DeltaTable(path).version()
    files_before = len(list((tmp_path / "seasons" / "season=0").glob("*.parquet")))

    def fail_after_origin_a(batches):
        for batch in batches:
            yield batch  # other origins' batches reach the writer and land in files before the failure
            if 0 in batch.column("origin").to_pylist():
                time.sleep(5)  # the other task slot writes its files meanwhile, so the job dies midway
                raise RuntimeError("sampler broke midway")

    broken = seasons.samples(0).mapInArrow(fail_after_origin_a, SAMPLE_SCHEMA)
    with pytest.raises(Exception, match="sampler broke midway"):
        write_season(broken, path, 0)
    assert DeltaTable(path).version() == version
    assert season_rows(path, 0) == before
    assert len(list((tmp_path / "seasons" / "season=0").glob("*.parquet"))) > files_before  # it did fail midway


def test_feed_hands_over_seasons_in_order_once_written_with_sequential_content(catalogue, tmp_path):
    seasons = sampler(catalogue, samples_per_view=per_origin(30), negatives=2)
    sequential, pipelined = str(tmp_path / "sequential"), str(tmp_path / "pipelined")
    for season in range(3):
        seasons.write(season, sequential)
    received = []
    with SeasonFeed(lambda season: seasons.write(season, pipelined), range(3)) as feed:
        for season in feed:
            received.append((season, season_rows(pipelined, season)))  # readable the moment it is handed over
    assert [season for season, _ in received] == [0, 1, 2]
    assert [rows for _, rows in received] == [season_rows(sequential, season) for season in range(3)]
    assert sorted(feed.waited) == [0, 1, 2] and all(seconds >= 0 for seconds in feed.waited.values())


def test_feed_raises_the_sampling_error_to_the_trainer():
    def write(season: int) -> None:
        if season == 1:
            raise ValueError("season 1 could not be sampled")

    received = []
    with SeasonFeed(write, range(3)) as feed, pytest.raises(ValueError, match="season 1"):
        for season in feed:
            received.append(season)
    assert received == [0]


def test_too_small_catalogue_is_an_input_error(spark):
    assets = spark.createDataFrame([(0, "a", 1), (1, "b", 1)], "asset_idx int, asset_id string, views long")
    pairs = spark.createDataFrame([("a", "b", 1)], "asset_a string, asset_b string, co_views long")
    with pytest.raises(InputError, match="2 assets"):
        season_sampler(SeasonsConfig(walk="coview"), 0, assets, pairs=pairs)


def test_the_feed_draws_one_season_ahead_of_the_trainer_and_no_further():
    written = []
    with SeasonFeed(written.append, range(6)) as feed:
        for season in feed:
            time.sleep(0.2)  # the thread has time to run ahead, if it would
            assert max(written) <= season + 1
            if season == 2:
                break  # a run that stops early leaves at most one season it does not train
    assert written == [0, 1, 2, 3] and feed.written == written


def test_the_held_out_slice_is_the_last_view_in_the_walks_order_of_users_with_three_views(catalogue):
    pairs, assets, views = catalogue
    tied = views.withColumn(  # u3's last two views at one time: the walk's tie order decides which is last
        "viewed_at",
        F.when((F.col("user_id") == "u3") & (F.col("asset_idx") == 3), F.timestamp_seconds(F.lit(1_004))).otherwise(
            F.col("viewed_at")
        ),
    )
    _, histories = bipartite_lists(tied, assets, 2, in_viewing_order=True)
    last_in_walk = {row["user_id"]: row["assets"][-1] for row in histories.collect() if len(row["assets"]) >= 3}
    every = {(row["user_id"], row["asset_idx"]) for row in held_out_views(tied, 10, seed=1).collect()}
    assert every == set(last_in_walk.items()) and len(every) == 3  # u0, u2, u3 have 3 views or more
    two = {row["user_id"] for row in held_out_views(tied, 2, seed=1).collect()}
    assert len(two) == 2 and two < set(last_in_walk)
    assert {row["user_id"] for row in held_out_views(tied, 2, seed=1).collect()} == two  # seeded


def test_the_driver_picks_the_held_out_slice_and_orders_ties_as_spark_does(spark):
    """The driver reads small views by delta-rs and does what Spark's jobs do with them: its xxhash64 is Spark's
    (longs of every range, ints, a literal seed), so the slice it holds out and the ties of the lists it makes
    are Spark's, times missing or shared included."""
    rng = np.random.default_rng(3)
    user = rng.choice(np.array([-(2**63), -7, 0, 5, 2**40, 2**63 - 1, *rng.integers(-(2**62), 2**62, 40)]), 400)
    asset = rng.integers(0, 60, 400).astype(np.int32)
    seconds = rng.choice(np.array([1_000, 1_001, 2_000, -1]), 400)  # few times, so ties; -1: no time
    rows = pa.table({"user_id": user, "asset_idx": asset}).group_by(["user_id", "asset_idx"]).aggregate([])
    stamps = pa.array(np.where(seconds[: rows.num_rows] < 0, None, seconds[: rows.num_rows] * 10**6).tolist())
    views = rows.append_column("viewed_at", stamps.cast(pa.timestamp("us", "UTC")))
    frame = spark.createDataFrame(views)

    user_ids, asset_ids = views.column("user_id").to_numpy(), views.column("asset_idx").to_numpy()
    hashed = frame.select(F.xxhash64("user_id", "asset_idx"), F.xxhash64("user_id", F.lit(9))).toArrow()
    assert np.array_equal(hashed.column(0).to_numpy(), xxhash64(user_ids, asset_ids))
    assert np.array_equal(hashed.column(1).to_numpy(), xxhash64(user_ids, 9))
    for users, seed in ((5, 0), (1_000, 1)):
        picked = held_out_rows(views, users, seed)
        by_spark = {tuple(row) for row in held_out_views(frame, users, seed).collect()}
        assert set(zip(user_ids[picked].tolist(), asset_ids[picked].tolist())) == by_spark
        assert len(by_spark) == min(users, int((np.unique(user_ids, return_counts=True)[1] >= 3).sum()))
    key = [("user_id", "ascending"), ("asset_idx", "ascending")]
    onward = onward_views(frame.withColumn("tie", view_tie())).toArrow().sort_by(key)
    assert onward.to_pylist() == onward_views_with_ties(views).sort_by(key).to_pylist()


def test_a_sample_that_cannot_draw_deletes_no_season_it_would_replace(spark, tmp_path, capsys):
    out = str(tmp_path / "out")
    tiny = ["--users", "200", "--catalogue-size", "40", "--genres", "4", "--views-per-user", "10"]
    assert cli.main(["pairs", "--out", out, *tiny]) == ExitCode.OK
    shutil.rmtree(tmp_path / "out" / "pairs")  # as `film2vec run` leaves it: the default walk reads the views
    assert cli.main(["sample", "--out", out, "--seasons", "3", "--samples-per-view", "1"]) == ExitCode.OK
    drawn = DeltaTable(f"{out}/seasons")
    before = drawn.version()
    assert cli.main(["sample", "--out", out, "--seasons", "1", "--walk", "coview"]) == ExitCode.BAD_INPUT
    assert "pairs not found" in capsys.readouterr().err
    after = DeltaTable(f"{out}/seasons")
    assert after.version() == before  # seasons 1 and 2 are still there: the stop came first
    assert sorted(set(after.to_pyarrow_table(columns=["season"]).column("season").to_pylist())) == [0, 1, 2]


@pytest.mark.parametrize("drawn_by", ["driver", "spark"])
@pytest.mark.parametrize("walk", sorted(WALKS))
def test_every_walk_steps_to_the_one_asset_a_tiny_graph_allows(spark, tmp_path, walk, drawn_by):
    """Two users who each watched two assets (0, 1 and 2, 3): each asset's only co-view and only other asset
    of its user is its partner, so every walk, drawn on the driver or by Spark, gives exactly that target."""
    assets = spark.createDataFrame(
        [(i, f"asset {i}", 1) for i in range(4)], "asset_idx int, asset_id string, views long"
    )
    pairs = spark.createDataFrame(
        [(f"asset {a}", f"asset {b}", 1) for a, b in ((0, 1), (1, 0), (2, 3), (3, 2))],
        "asset_a string, asset_b string, co_views long",
    )
    views = spark.createDataFrame(
        [("u1", 0, 1), ("u1", 1, 2), ("u2", 2, 1), ("u2", 3, 2)], "user_id string, asset_idx int, at long"
    ).select("user_id", "asset_idx", F.timestamp_seconds("at").alias("viewed_at"))
    config = SeasonsConfig(walk=walk, sampler=drawn_by, samples_per_view=25, origin_distribution="stratified")
    drawn = season_sampler(config, 0, assets, pairs=pairs, views=views)
    assert drawn.walk is WALKS[walk] and (drawn.driver_lists is not None) == (drawn_by == "driver")
    path = str(tmp_path / "seasons")
    drawn.write(0, path)
    rows = season_rows(path, 0)
    assert {(origin, target) for origin, target, _ in rows} == {(0, 1), (1, 0), (2, 3), (3, 2)}
    assert len(rows) == 100  # 25 samples a view, stratified: 25 per origin
