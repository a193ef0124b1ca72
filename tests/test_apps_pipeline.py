"""The uses on a finished run over a small planted catalogue: tastes, recommendations, audit, clusters, map."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import numpy as np
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from mlflow.tracking import MlflowClient
from sklearn.metrics import adjusted_rand_score

from film2vec import cli, pipeline, tables, tracking
from film2vec.apps.similar import similar
from film2vec.apps.stage import recommend, tastes, uses
from film2vec.config import Config
from film2vec.errors import InputError
from film2vec.ingest.synthetic import generate_catalogue
from film2vec.serving.nearest import normalised, top_neighbours

MISLABELLED_SHARE = 0.05
UNLABELLED_SHARE = 0.05
CANDIDATES = 120


@pytest.fixture(scope="module")
def finished(spark, tmp_path_factory):
    """A run over a catalogue whose metadata has 5% wrong genres and 5% none, then every use."""
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    config = Config()
    config.data.out = str(tmp_path_factory.mktemp("uses"))
    config.synthetic.users, config.synthetic.catalogue_size, config.synthetic.genres = 1_500, 600, 6
    # every asset's own genre recoverable at this volume: one genre each, all out before the first view, a short tail;
    # genres of equal size, as k-means finds and the audit's vote of neighbours reads them best
    config.synthetic.multi_genre_share, config.synthetic.back_catalogue_share = 0.0, 1.0
    config.synthetic.popularity_exponent, config.synthetic.genre_exponent = 1.0, 0.0
    config.seasons.seasons, config.seasons.samples_per_view = 2, 1.5  # a 20th of the default's volume does here
    catalogue = generate_catalogue(config.synthetic, config.seed)
    rng = np.random.default_rng(7)
    size, genres = len(catalogue.catalogue_ids), len(catalogue.genre_names)
    chosen = rng.permutation(size)
    mislabelled = chosen[: round(MISLABELLED_SHARE * size)]
    unlabelled = chosen[len(mislabelled) : len(mislabelled) + round(UNLABELLED_SHARE * size)]
    given = catalogue.planted_genre.copy()
    given[mislabelled] = (given[mislabelled] + rng.integers(1, genres, size=len(mislabelled))) % genres
    names = [[catalogue.genre_names[g]] for g in given]
    for row in unlabelled:
        names[row] = []
    metadata = catalogue.assets_table().set_column(2, "genres", pa.array(names, pa.list_(pa.string())))
    config.data.events, config.data.metadata = config.out("given/events"), config.out("given/assets")
    tables.of(config, "given/events").write(spark.createDataFrame(catalogue.events_table()))
    tables.of(config, "given/assets").write(spark.createDataFrame(metadata))
    pipeline.run(spark, config)
    config.apps.candidates = config.out("given/candidates")
    candidate_ids = np.sort(rng.choice(catalogue.catalogue_ids, size=CANDIDATES, replace=False))
    tables.of(config, "given/candidates").write(spark.createDataFrame(pa.table({"asset_id": candidate_ids})))
    config.apps.n_clusters = genres
    summary = uses(spark, config)
    truth = {
        "genre_of": dict(zip(catalogue.catalogue_ids.tolist(), catalogue.planted_genre.tolist())),
        "mislabelled": set(catalogue.catalogue_ids[mislabelled].tolist()),
        "unlabelled": set(catalogue.catalogue_ids[unlabelled].tolist()),
        "candidates": candidate_ids,
        "events": catalogue.events_table().to_pandas(),
    }
    return config, summary, truth


def table(config: Config, name: str):
    return DeltaTable(config.out(name)).to_pyarrow_table().to_pandas()


def test_recommendations_follow_planted_tastes(finished):
    config, summary, truth = finished
    genre_of = truth["genre_of"]
    events = truth["events"].assign(genre=lambda f: f.asset_id.map(genre_of))
    favourite = events.groupby("user_id").genre.agg(lambda g: g.value_counts().idxmax())
    watched = events.groupby("user_id").asset_id.agg(set)
    recommended = table(config, "recommendations")
    assert set(recommended.asset_id) <= set(truth["candidates"].tolist())
    assert recommended.groupby("user_id")["rank"].max().max() == config.apps.recommend_n
    assert not any(asset in watched[user] for user, asset in zip(recommended.user_id, recommended.asset_id))
    hit = recommended.asset_id.map(genre_of).to_numpy() == favourite[recommended.user_id].to_numpy()
    candidate_genres = np.array([genre_of[a] for a in truth["candidates"].tolist()])
    chance = np.mean([(candidate_genres == favourite[user]).mean() for user in recommended.user_id])
    assert hit.mean() >= 0.3 and hit.mean() >= 2 * chance  # chance: about 1 in 6 genres; users mix 2-3 genres
    assert summary["tastes"]["users"] == config.synthetic.users == recommended.user_id.nunique()


def test_audit_finds_planted_mislabels_and_suggests_missing_genres(finished):
    config, summary, truth = finished
    audit = table(config, "audit")
    flagged = set(audit.asset_id[audit.status == "disagrees"])
    caught = flagged & truth["mislabelled"]
    assert len(caught) / len(flagged) >= 0.8 and len(caught) / len(truth["mislabelled"]) >= 0.8
    suggested = audit[audit.status == "unlabelled"]
    assert set(suggested.asset_id) == truth["unlabelled"]
    names = generate_catalogue(config.synthetic, config.seed).genre_names
    right = [names[truth["genre_of"][a]] == label for a, label in zip(suggested.asset_id, suggested.top_label)]
    assert np.mean(right) >= 0.9
    logged = MlflowClient().download_artifacts(summary["audit"]["mlflow_run"], "uses/audit.json")
    report = json.loads(Path(logged).read_text())
    assert report["by_status"] == summary["audit"]["by_status"]


def test_clusters_recover_planted_genres(finished):
    config, summary, truth = finished
    assigned = table(config, "asset_clusters")
    planted = assigned.asset_id.map(truth["genre_of"])
    assert adjusted_rand_score(planted, assigned.cluster) >= 0.8
    described = table(config, "clusters").sort_values("cluster")
    assert described["size"].tolist() == summary["clusters"]["sizes"] and described["size"].sum() == len(assigned)
    assert all(len(titles) == config.apps.central_assets for titles in described.central_titles)


def test_map_files_are_valid_and_logged(finished):
    config, summary, _ = finished
    paths = summary["map"]["plots"]
    assert [p.rsplit("/", 1)[1] for p in paths] == ["map.png", "map.html", "loss.png"]
    for path in paths:
        content = Path(path).read_bytes()
        assert content[:8] == b"\x89PNG\r\n\x1a\n" if path.endswith(".png") else content.startswith(b"<!DOCTYPE html>")
    logged = {a.path for a in MlflowClient().list_artifacts(summary["map"]["mlflow_run"], "uses")}
    assert {"uses/map.png", "uses/map.html", "uses/loss.png", "uses/audit.json"} <= logged


def test_the_run_writes_every_assets_neighbours_as_brute_force_ranks_them(finished):
    config, _, _ = finished
    embeddings = table(config, "embeddings").sort_values("asset_id", ignore_index=True)
    neighbours = table(config, "neighbours")
    unit = normalised(np.stack(embeddings.vector.to_numpy()))
    order, cosine = top_neighbours(unit, np.arange(len(unit)), config.tracking.top_k)
    expected = {
        (asset, rank + 1): (embeddings.asset_id[order[row, rank]], cosine[row, rank])
        for row, asset in enumerate(embeddings.asset_id)
        for rank in range(config.tracking.top_k)
    }
    found = {
        (a, r): (n, s)
        for a, r, n, s in zip(neighbours.asset_id, neighbours["rank"], neighbours.neighbour_id, neighbours.score)
    }
    assert found.keys() == expected.keys()
    assert all(
        found[key][0] == expected[key][0] and found[key][1] == pytest.approx(expected[key][1], abs=1e-5)
        for key in found
    )
    version = MlflowClient(f"sqlite:///{config.out('mlflow.db')}").get_model_version_by_alias("film2vec", "champion")
    assert set(neighbours.model_version) == set(embeddings.model_version) == {int(version.version)}
    assert set(embeddings.run_id) == {version.run_id}


def test_similar_prints_neighbours_of_the_same_genre(finished, capsys):
    config, _, _ = finished
    assert cli.main(["similar", "comedy #1", "--out", config.data.out, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["title"] == "Comedy #1"
    assert [n["rank"] for n in printed["neighbours"]] == list(range(1, config.tracking.top_k + 1))
    # chance: under 2 of 10; the most popular title has the least genre-pure neighbours
    assert sum(n["title"].startswith("Comedy #") for n in printed["neighbours"]) >= 4
    scores = [n["score"] for n in printed["neighbours"]]
    assert scores == sorted(scores, reverse=True)


def test_missing_candidates_and_unknown_titles_are_named(spark, finished):
    config, _, _ = finished
    config = Config(data=config.data)
    config.apps.candidates = config.out("no-such-rail")
    with pytest.raises(InputError, match="candidates at .*no-such-rail: no such file or folder"):
        recommend(spark, config)
    config.apps.similar_to = "no such film"
    with pytest.raises(InputError, match="'no such film'"):
        similar(config)


def test_uses_log_to_the_run_that_trained_the_served_vectors(spark, finished):
    config, _, _ = finished
    trained = table(config, "embeddings").run_id.iloc[0]
    store = tracking.use_store(config.data.out)
    with mlflow.start_run(experiment_id=tracking.experiment_id(config.tracking.experiment, store)) as newer:
        pass  # a newer run in the experiment, as `film2vec evaluate` or another job leaves one
    logged = tastes(spark, config)["mlflow_run"]
    assert logged == trained != newer.info.run_id
