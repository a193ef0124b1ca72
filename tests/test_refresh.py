"""The nightly refresh: incremental pair counts equal a full recount, warm start keeps known vectors and
places new assets by genre, cold-start vectors are provisional, and the alias moves only past its floors."""

from __future__ import annotations

import copy
import os
import shutil

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from film2vec import pipeline, tracking
from film2vec.config import Config, ConfigError, TrackingConfig
from film2vec.ingest.stage import append_new_views, new_batch
from film2vec.ingest.synthetic import generate_catalogue
from film2vec.pairs.stage import count_pairs
from film2vec.serving.gate import SERVED_TABLES, candidate
from film2vec.serving.nearest import normalised, top_neighbours
from film2vec.tracking import alias_decision
from film2vec.train.stage import warm_start
from film2vec.train.warm import label_mean_vectors, median_cosine

# ---- pure kernels


def test_label_means_weigh_each_known_asset_by_the_labels_it_shares():
    known = np.array([[2.0, 0.0], [0.0, 4.0], [0.0, -1.0]])  # unit rows: (1, 0), (0, 1), (0, -1); norms 2, 4, 1
    labels = [{"a"}, {"a", "b"}, {"c"}]
    vectors, found = label_mean_vectors(known, labels, [{"a"}, {"b"}, {"a", "b"}, {"z"}, None])
    assert found.tolist() == [True, True, True, False, False]
    median_norm = 2.0
    # {"a"}: (1,0) and (0,1) once each; {"a","b"}: (1,0) once, (0,1) twice -> direction (1, 2)
    expected = np.array([[1, 1], [0, 1], [1, 2]], float)
    expected = expected / np.linalg.norm(expected, axis=1, keepdims=True) * median_norm
    np.testing.assert_allclose(vectors[:3], expected)
    assert not vectors[3:].any()


def test_median_cosine_of_rows_before_and_after():
    before = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    after = np.array([[3.0, 0.0], [1.0, 0.0], [-1.0, -1.0]])  # cosines 1, 0, -1
    assert median_cosine(before, after) == pytest.approx(0.0)
    assert median_cosine(before[:1], 5 * before[:1]) == pytest.approx(1.0)


def test_alias_moves_only_when_every_floor_is_reached():
    assert alias_decision({}, TrackingConfig()).moved  # no floor: always
    floors = TrackingConfig(alias_floor_recall=0.1, alias_floor_genre_p=0.5)
    assert alias_decision({"recall_at_20": 0.1, "genre_p_at_10": 0.7}, floors).moved
    low = alias_decision({"recall_at_20": 0.05, "genre_p_at_10": 0.7}, floors)
    assert not low.moved and "recall_at_20 = 0.0500 is below the floor 0.1" in low.reason
    missing = alias_decision({"genre_p_at_10": 0.7}, floors)
    assert not missing.moved and "recall_at_20 is unavailable" in missing.reason
    assert not alias_decision({"recall_at_20": float("nan"), "genre_p_at_10": 0.7}, floors).moved


# ---- incremental pair counts


def random_events(seed: int = 3, users: int = 40, assets: int = 30, views: int = 500) -> pd.DataFrame:
    """Random views with times; some (user, asset) repeat, so duplicates are merged too."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user_id": rng.integers(0, users, views),
            "asset_id": rng.integers(100, 100 + assets, views),
            "viewed_at": pd.to_datetime(rng.integers(1_600_000_000, 1_700_000_000, views), unit="s", utc=True),
        }
    )


def brute_force_pairs(events: pd.DataFrame, inverse: bool = False) -> dict[tuple[int, int], float]:
    """co_views(a, b) over distinct (user, asset), both orders, by looping over users."""
    counts: dict[tuple[int, int], float] = {}
    for _, assets in events.drop_duplicates(["user_id", "asset_id"]).groupby("user_id")["asset_id"]:
        seen = sorted(assets)
        weight = 1.0 / max(len(seen) - 1, 1) if inverse else 1
        for a in seen:
            for b in seen:
                if a != b:
                    counts[(a, b)] = counts.get((a, b), 0) + weight
    return counts


def pair_table(config: Config) -> dict[tuple[int, int], float]:
    table = DeltaTable(config.out("pairs")).to_pandas()
    assert not table.duplicated(["asset_a", "asset_b"]).any()
    return {(a, b): c for a, b, c in table.itertuples(index=False)}


def write_events(frame: pd.DataFrame, path) -> str:
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return str(path)


@pytest.fixture(scope="module")
def batches(tmp_path_factory):
    """Random events split in time: users in both batches, and assets that only the second batch has."""
    events = random_events()
    late_assets = events.asset_id >= 125  # five assets first viewed in the second batch
    cut = pd.Timestamp(1_650_000_000, unit="s", tz="UTC")
    second = (events.viewed_at >= cut) | late_assets
    events.loc[late_assets, "viewed_at"] = events.loc[late_assets, "viewed_at"].clip(lower=cut)
    folder = tmp_path_factory.mktemp("events")
    first_users, second_users = set(events[~second].user_id), set(events[second].user_id)
    assert len(first_users & second_users) > 20 and set(events[second].asset_id) - set(events[~second].asset_id)
    return {
        "all": events,
        "cut": cut,
        "first": write_events(events[~second], folder / "first.parquet"),
        "second": write_events(events[second], folder / "second.parquet"),
        "everything": write_events(events, folder / "all.parquet"),
    }


def counted(spark, out, events: str, **pairs_settings) -> Config:
    config = Config()
    config.data.out = str(out)
    config.data.events = events
    for name, value in pairs_settings.items():
        setattr(config.pairs, name, value)
    count_pairs(spark, config)
    return config


@pytest.fixture(scope="module")
def first_counted(spark, tmp_path_factory, batches):
    """DIR with the first batch counted; each test works on a copy (Delta tables copy as folders)."""
    return counted(spark, tmp_path_factory.mktemp("first"), batches["first"])


def copy_of(config: Config, tmp_path) -> Config:
    shutil.copytree(config.data.out, tmp_path, dirs_exist_ok=True)
    copied = copy.deepcopy(config)
    copied.data.out = str(tmp_path)
    return copied


@pytest.mark.parametrize("batch", ["new-events", "since"])
def test_incremental_pairs_equal_a_full_recount(spark, tmp_path, batches, first_counted, batch):
    config = copy_of(first_counted, tmp_path)
    assets_before = DeltaTable(config.out("assets")).to_pandas().set_index("asset_id").asset_idx
    incremental = copy.deepcopy(config)
    if batch == "new-events":
        incremental.data.new_events = batches["second"]
    else:  # every event again, the new batch picked by time
        incremental.data.events, incremental.data.since = batches["everything"], batches["cut"].isoformat()
    summary = count_pairs(spark, incremental)

    everything = batches["all"]
    assert pair_table(config) == brute_force_pairs(everything)
    distinct = len(everything.drop_duplicates(["user_id", "asset_id"]))
    assert summary["new_views"] == distinct - len(
        pd.read_parquet(batches["first"]).drop_duplicates(["user_id", "asset_id"])
    )
    assert summary["new_assets"] == 5
    assets = DeltaTable(config.out("assets")).to_pandas().set_index("asset_id")
    assert (assets.asset_idx[assets_before.index] == assets_before).all()  # old indices kept
    assert sorted(assets.asset_idx) == list(range(len(assets)))  # new ones appended, dense
    views = DeltaTable(config.out("views")).to_pandas()
    assert len(views) == distinct
    assert (views.asset_idx == assets.asset_idx[views.asset_id].to_numpy()).all()
    assert (assets.views == views.asset_id.value_counts()[assets.index]).all()

    again = count_pairs(spark, incremental)  # the same batch twice adds nothing
    assert again["new_views"] == 0 and pair_table(config) == brute_force_pairs(everything)


@pytest.mark.parametrize("pair_method", ["gram", "join"])
def test_increment_of_new_views_only_equals_a_full_recount(spark, tmp_path, pair_method):
    """Users in both batches, users with one view (earlier, new, or one of each) and a new asset."""
    at = pd.Timestamp(1_600_000_000, unit="s", tz="UTC")
    first = pd.DataFrame(
        {"user_id": [1, 1, 1, 2, 2, 3, 4, 5], "asset_id": [10, 11, 12, 10, 13, 11, 12, 10], "viewed_at": at}
    )
    second = pd.DataFrame(
        {
            "user_id": [1, 1, 2, 4, 6, 7, 7, 1],
            "asset_id": [13, 14, 11, 14, 12, 10, 14, 10],  # 14 is new; (1, 10) was seen before
            "viewed_at": at + pd.Timedelta(days=1),
        }
    )
    config = counted(spark, tmp_path / "out", write_events(first, tmp_path / "first.parquet"), pair_method=pair_method)
    config.data.new_events = write_events(second, tmp_path / "second.parquet")
    summary = count_pairs(spark, config)
    assert pair_table(config) == brute_force_pairs(pd.concat((first, second)))
    assert summary["new_views"] == 7 and summary["users_with_new_views"] == 5 and summary["new_assets"] == 1


def test_inverse_weighting_increments_match_a_full_recount(spark, tmp_path, batches):
    config = counted(spark, tmp_path, batches["first"], user_weighting="inverse")
    config.data.new_events = batches["second"]
    count_pairs(spark, config)
    found, expected = pair_table(config), brute_force_pairs(batches["all"], inverse=True)
    assert found.keys() == expected.keys()
    np.testing.assert_allclose([found[key] for key in expected], list(expected.values()), rtol=1e-12)
    config.pairs.user_weighting = "none"
    with pytest.raises(ConfigError, match="--user-weighting: .* was counted with 'inverse'"):
        count_pairs(spark, config)


def test_a_run_stopped_after_the_views_commit_is_completed_by_the_next(spark, tmp_path, batches, first_counted):
    config = copy_of(first_counted, tmp_path)
    config.data.new_events = batches["second"]
    batch, _, _ = new_batch(spark, config)
    append_new_views(spark, config, batch)  # then "killed": assets and pairs not updated
    count_pairs(spark, config)
    assert pair_table(config) == brute_force_pairs(batches["all"])


def test_merging_into_capped_or_sparsified_counts_is_refused(spark, tmp_path, batches):
    config = counted(spark, tmp_path, batches["first"], max_neighbours=5)
    config.data.new_events = batches["second"]
    versions = [DeltaTable(config.out(table)).version() for table in ("views", "assets", "pairs")]
    with pytest.raises(ConfigError, match="max-neighbours.*exact counts"):
        count_pairs(spark, config)  # this run asks for a cap
    config.pairs.max_neighbours = 0
    with pytest.raises(ConfigError, match="max-neighbours.*exact counts.*was counted with max_neighbours = 5"):
        count_pairs(spark, config)  # the table holds capped counts
    assert [DeltaTable(config.out(table)).version() for table in ("views", "assets", "pairs")] == versions


def test_refresh_needs_a_batch(spark, tmp_path):
    config = Config()
    config.data.out = str(tmp_path)
    with pytest.raises(ConfigError, match="--new-events PATH or --since TIME"):
        pipeline.refresh(spark, config)
    assert not any(tmp_path.iterdir())  # nothing written


# ---- warm start, cold start and the alias on the planted catalogue


@pytest.fixture(scope="module")
def refreshed(spark, tmp_path_factory):
    """A model trained on the synthetic catalogue without 20 of its assets, then refreshed with their views;
    10 more assets are in the metadata only."""
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    config = Config()
    config.data.out = str(tmp_path_factory.mktemp("refresh"))
    config.synthetic.users, config.synthetic.catalogue_size = 1_500, 200
    # every asset's own genre recoverable at this volume: one genre each, all out before the first view
    config.synthetic.multi_genre_share, config.synthetic.back_catalogue_share = 0.0, 1.0
    config.seasons.seasons, config.seasons.samples_per_view = 3, 1.0
    config.train.cold_start, config.train.warm_new_assets = True, "labels"
    catalogue = generate_catalogue(config.synthetic, config.seed)
    events, assets = catalogue.events_table().to_pandas(), catalogue.assets_table().to_pandas()
    ids = np.sort(assets.asset_id.to_numpy())
    new_ids, cold_ids = ids[::10], ids[5::20]  # every 10th asset arrives in the batch, 10 others never
    folder = tmp_path_factory.mktemp("synthetic")
    metadata = write_events(assets, folder / "assets.parquet")
    late = events.asset_id.isin(new_ids)
    first = write_events(events[~late & ~events.asset_id.isin(cold_ids)], folder / "first.parquet")
    batch = write_events(events[late], folder / "batch.parquet")
    config.data.events, config.data.metadata = first, metadata
    base = pipeline.run(spark, config)
    before = DeltaTable(config.out("embeddings")).to_pandas().set_index("asset_id")
    served = {table: served_state(config, table) for table in SERVED_TABLES}
    nightly = copy.deepcopy(config)
    nightly.data.new_events = batch
    nightly.tracking.alias_floor_genre_p = 0.999  # out of reach: the alias must stay
    summary = pipeline.refresh(spark, nightly)
    assert {table: served_state(config, table) for table in SERVED_TABLES} == served  # the floor was missed
    genre = {a: g[0] for a, g in zip(assets.asset_id, assets.genres)}
    return config, base, summary, before, genre, new_ids, cold_ids


def served_state(config, table: str) -> tuple:
    """A served table's Delta version and files: what a failed version must leave exactly as it was."""
    found = DeltaTable(config.out(table))
    return found.version(), sorted(found.file_uris())


def new_vectors(config, summary) -> pd.DataFrame:
    """The refresh's vectors: its version's candidate rows (the floor kept them from being served)."""
    rows = DeltaTable(config.out(candidate("embeddings"))).to_pandas()
    return rows[rows.model_version == summary["train"]["model_version"]].set_index("asset_id")


def test_warm_start_keeps_known_vectors_close(refreshed):
    config, _, summary, before, *_ = refreshed
    warm = summary["train"]["warm_start"]
    assert warm["known_assets"] == (before.source == "views").sum()
    assert warm["new_assets"] == 20 and warm["new_assets_started_from_labels"] == 20
    assert warm["median_cosine_to_previous"] >= 0.8  # documented in docs/operations.md: one warm season moves little
    after = new_vectors(config, summary)
    known = before.index[before.source == "views"]
    cosines = (normalised(np.stack(before.vector[known])) * normalised(np.stack(after.vector[known]))).sum(axis=1)
    assert np.median(cosines) == pytest.approx(warm["median_cosine_to_previous"], abs=1e-6)


def test_new_assets_start_from_labels_or_at_random_as_asked(refreshed):
    config, *_ = refreshed
    catalogue = DeltaTable(config.out("assets")).to_pyarrow_table(columns=["asset_idx", "asset_id", "genres"])
    tracking.use_store(config.data.out)
    warm = copy.deepcopy(config)
    warm.train.warm_start = f"models:/{config.tracking.model_name}@{config.tracking.alias}"
    from_labels = warm_start(warm, catalogue.sort_by("asset_idx"))
    warm.train.warm_new_assets = "random"
    at_random = warm_start(warm, catalogue.sort_by("asset_idx"))
    assert from_labels.new_assets == at_random.new_assets == 20  # the serving model predates the batch
    assert len(from_labels.label_rows) == 20 and len(at_random.label_rows) == 0
    # the model carries its Adagrad accumulators: known rows continue from theirs, new rows start empty
    start = from_labels.starting_rows()
    known = len(from_labels.known_rows)
    assert (start.accumulators[:known] > 0).all() and (start.accumulators[known:] == 0).all()
    assert set(start.rows[known:]) == set(from_labels.label_rows)


def neighbour_genre_share(table: pd.DataFrame, queried, genre: dict) -> float:
    ids = table.index.to_numpy()
    rows = table.index.get_indexer(queried)
    order, _ = top_neighbours(normalised(np.stack(table.vector)), rows, 10)
    return float(np.mean([[genre[ids[n]] == genre[ids[r]] for n in row] for r, row in zip(rows, order)]))


def test_new_assets_land_among_their_planted_genre(refreshed):
    config, _, summary, _, genre, new_ids, _ = refreshed
    after = new_vectors(config, summary)
    assert set(new_ids) <= set(after.index[after.source == "views"])
    assert neighbour_genre_share(after, new_ids, genre) >= 0.8  # 10 planted genres: chance is about 0.1


def test_cold_start_assets_get_provisional_vectors_near_their_genre(refreshed):
    config, base, summary, _, genre, _, cold_ids = refreshed
    after = new_vectors(config, summary)
    provisional = after.index[after.source == "metadata"]
    assert sorted(provisional) == sorted(cold_ids)
    assert base["train"]["provisional_vectors"] == 10 + 20  # before the batch, the late assets were unviewed too
    assert summary["train"]["provisional_vectors"] == 10
    assert neighbour_genre_share(after, cold_ids, genre) >= 0.8


def test_alias_stays_when_the_floor_is_not_reached_and_the_run_says_why(refreshed):
    config, base, summary, *_ = refreshed
    alias = summary["train"]["alias"]
    assert not alias["moved"] and "below the floor 0.999" in alias["reason"]
    genre_p = summary["train"]["figures"]["genre_p_at_10"]
    assert 0.5 < genre_p < 0.999 and f"genre_p_at_10 = {genre_p:.4f}" in alias["reason"]  # chance: about 0.1
    client = mlflow.MlflowClient(f"sqlite:///{config.out('mlflow.db')}")
    served = client.get_model_version_by_alias(config.tracking.model_name, config.tracking.alias)
    assert f"models:/{config.tracking.model_name}/{served.version}" == base["train"]["model"]
    assert summary["train"]["model"] != base["train"]["model"]  # the new version is registered all the same
    run = client.get_run(summary["train"]["run_id"])
    assert run.data.tags["alias_moved"] == "false" and run.data.tags["alias_decision"] == alias["reason"]
    assert run.data.metrics["warm_start_median_cosine"] == pytest.approx(
        summary["train"]["warm_start"]["median_cosine_to_previous"]
    )


def test_served_model_marks_provisional_vectors(refreshed):
    config, _, summary, _, _, _, cold_ids = refreshed
    mlflow.set_tracking_uri(f"sqlite:///{config.out('mlflow.db')}")
    model = mlflow.pyfunc.load_model(summary["train"]["model"])
    answer = model.predict(pd.DataFrame({"asset_id": [int(cold_ids[0]), -1]}), params={"k": 5})
    assert answer.known.tolist() == [True, False] and answer.provisional.tolist() == [True, False]
    assert len(answer.neighbours[0]) == 5


def test_a_refresh_with_nothing_new_says_so_and_registers_nothing(spark, refreshed, capsys):
    config, _, summary, *_ = refreshed
    views = DeltaTable(config.out("views")).version()
    versions = mlflow.MlflowClient(f"sqlite:///{config.out('mlflow.db')}").search_model_versions("name = 'film2vec'")
    again = copy.deepcopy(config)
    again.data.new_events = summary["inputs"]["ingest"]["source"]  # the batch the fixture merged, once more
    repeated = pipeline.refresh(spark, again)
    assert repeated["inputs"]["new_views"] == 0 and "no new version, the alias stays" in repeated["nothing_new"]
    assert "train" not in repeated and DeltaTable(config.out("views")).version() == views
    after = mlflow.MlflowClient(f"sqlite:///{config.out('mlflow.db')}").search_model_versions("name = 'film2vec'")
    assert len(after) == len(versions)
