"""The numpy kernels of the uses, checked against brute force and hand-computed answers."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from film2vec import cli
from film2vec.apps.audit import holdout_recovery, judge, label_votes
from film2vec.apps.clusters import describe_clusters, kmeans
from film2vec.apps.ranking import popularity_prior, rank_candidates
from film2vec.apps.recommend import recommendations
from film2vec.apps.similar import find_asset
from film2vec.apps.tastes import taste_vectors, user_vectors
from film2vec.errors import ExitCode, InputError
from film2vec.labels import label_matrix
from film2vec.plots import plot_map, write_map_html
from film2vec.recency import SECONDS_PER_DAY
from film2vec.serving.nearest import normalised, top_neighbours


def unit_rows(count: int, dim: int, seed: int) -> np.ndarray:
    return normalised(np.random.default_rng(seed).normal(size=(count, dim)))


def blobs(per_blob: int, centres: int, dim: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around `centres` random directions, and each one's blob."""
    rng = np.random.default_rng(seed)
    blob = np.repeat(np.arange(centres), per_blob)
    centre = normalised(rng.normal(size=(centres, dim)))
    return normalised(centre[blob] + spread * rng.normal(size=(len(blob), dim))), blob


def test_taste_is_the_mean_of_unit_vectors_and_halves_with_age():
    unit = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    plain = taste_vectors(unit, np.array([2, 1]), None, None)
    np.testing.assert_allclose(plain, [[0.5, 0.5], [0.6, 0.8]])
    seconds = np.array([0.0, 10 * SECONDS_PER_DAY, np.nan])  # the first view is 10 days older than the second
    weighted = taste_vectors(unit, np.array([2, 1]), seconds, half_life_days=10.0)
    np.testing.assert_allclose(weighted, [[1 / 3, 2 / 3], [0.6, 0.8]])  # weights 0.5 and 1
    with pytest.raises(ValueError, match="at least one view"):
        taste_vectors(unit, np.array([3, 0]), None, None)


def test_rank_candidates_matches_brute_force_and_skips_watched():
    rng = np.random.default_rng(1)
    tastes, candidates = rng.normal(size=(7, 4)), unit_rows(12, 4, 2)
    prior = popularity_prior(rng.integers(0, 50, size=12), 0.3)
    watched = [[0, 5], [], [1, 2, 3], list(range(12)), [11], [], [4]]
    columns, scores = rank_candidates(
        tastes, candidates, prior, np.array([len(w) for w in watched]), np.concatenate(watched).astype(int), 5
    )
    for user, seen in enumerate(watched):
        score = {c: tastes[user] @ candidates[c] + prior[c] for c in range(12) if c not in seen}
        expected = sorted(score, key=lambda c: (-score[c], c))[:5]
        kept = np.isfinite(scores[user])
        assert columns[user][kept].tolist() == expected
        np.testing.assert_allclose(scores[user][kept], [score[c] for c in expected])
    assert not np.isfinite(scores[3]).any()  # watched every candidate: nothing to recommend


def test_popularity_prior_spans_zero_to_its_weight():
    np.testing.assert_allclose(popularity_prior(np.array([0, 3, 15]), 2.0), [0.0, 1.0, 2.0])
    assert popularity_prior(np.array([0, 0]), 1.0).tolist() == [0.0, 0.0]


def test_label_votes_match_brute_force_and_ignore_own_and_unlabelled():
    unit = unit_rows(30, 5, 3)
    rng = np.random.default_rng(4)
    labels = rng.random((30, 4)) < 0.4
    labels[[2, 7]] = False  # unlabelled: they get a vote but never cast one
    shares = label_votes(unit, labels, 6)
    voters = np.flatnonzero(labels.any(axis=1))
    for asset in range(30):
        others = [v for v in voters if v != asset]
        nearest = sorted(others, key=lambda v: (-(unit[asset] @ unit[v]), v))[:6]
        np.testing.assert_allclose(shares[asset], labels[nearest].mean(axis=0))


def test_label_votes_with_fewer_voters_than_k():
    unit = unit_rows(4, 3, 5)
    labels = np.array([[True, False], [False, True], [False, False], [False, False]])
    shares = label_votes(unit, labels, 10)
    np.testing.assert_allclose(shares[0], [0, 1])  # its only other voter is asset 1
    np.testing.assert_allclose(shares[2], [0.5, 0.5])


def test_judge_sorts_assets_into_statuses():
    shares = np.array([[0.8, 0.2], [0.7, 0.3], [0.5, 0.5], [0.1, 0.9]])
    labels = np.array([[True, False], [False, True], [False, True], [False, False]])
    verdict = judge(shares, labels, confidence=0.6)
    assert verdict.status.tolist() == ["agrees", "disagrees", "uncertain", "unlabelled"]
    assert verdict.top_label.tolist() == [0, 0, 0, 1]
    np.testing.assert_allclose(verdict.own_support, [0.8, 0.3, 0.5, np.nan])
    assert verdict.predicted.tolist() == [[True, False], [True, False], [False, False], [False, True]]


def test_label_matrix_sorts_names_and_keeps_only_given_ones():
    matrix, names = label_matrix([["Drama"], ["Comedy", "Drama", "Drama"], None, []])
    assert names == ("Comedy", "Drama")
    assert matrix.toarray().tolist() == [[False, True], [True, True], [False, False], [False, False]]
    given, kept = label_matrix([{"Horror", "Drama"}, None], names)
    assert kept == names and given.toarray().tolist() == [[False, True], [False, False]]


def test_label_matrix_and_holdout_on_planted_blobs():
    unit, blob = blobs(40, 5, 8, 0.3, 6)
    names = [f"genre {b}" for b in blob]
    matrix, label_names = label_matrix([[n] for n in names[:-1]] + [None])
    matrix = matrix.toarray()
    assert label_names == tuple(f"genre {b}" for b in range(5)) and not matrix[-1].any()
    recovered = holdout_recovery(unit, matrix, 0.2, 10, 0.6, seed=0)
    assert recovered["hidden_assets"] == round(0.2 * 199)
    assert recovered["top_label_accuracy"] >= 0.95 > 0.3 >= recovered["always_most_common_accuracy"]
    assert recovered["precision"] >= 0.95 and recovered["recall"] >= 0.9


def test_kmeans_recovers_blobs_and_describes_them():
    unit, blob = blobs(30, 4, 8, 0.1, 7)
    clustering = kmeans(unit, 4, seed=0)
    assert len(set(zip(clustering.cluster.tolist(), blob.tolist()))) == 4  # one cluster per blob
    labels = np.eye(4, dtype=bool)[blob]
    described = describe_clusters(clustering, labels, ("a", "b", "c", "d"), top_labels=2, central=3)
    assert [d["size"] for d in described] == [30] * 4
    for d in described:
        assert d["label_shares"] == [1.0] and len(d["central_rows"]) == 3
        members = np.flatnonzero(clustering.cluster == d["cluster"])
        assert sorted(clustering.cosine[members])[-3:] == sorted(clustering.cosine[d["central_rows"]])


def test_find_asset_by_id_title_and_part_of_title():
    ids, titles, views = [10, 11, 12], ["Toy Story (1995)", "Toy Story 2 (1999)", None], np.array([5, 9, 1])
    assert find_asset("11", ids, titles, views) == (1, [])
    assert find_asset("toy story (1995)", ids, titles, views) == (0, [])
    assert find_asset("Toy Story", ids, titles, views) == (1, [0])  # the most viewed match wins
    with pytest.raises(InputError, match="'Heat'"):
        find_asset("Heat", ids, titles, views)


def lookup_tables(out: Path, with_neighbours: bool = True) -> None:
    """DIR/assets (three titles) and DIR/neighbours as training leaves them, written without Spark."""
    titles = ["Alpha", "Beta", "Alphabet"]
    write_deltalake(out / "assets", pa.table({"asset_id": [1, 2, 3], "title": titles, "views": [5, 9, 2]}))
    if with_neighbours:
        neighbours = {"asset_id": [1, 1, 2, 2, 3, 3], "rank": [1, 2] * 3, "neighbour_id": [3, 2, 1, 3, 1, 2]}
        write_deltalake(out / "neighbours", pa.table({**neighbours, "score": [0.9, 0.2, 0.5, 0.1, 0.9, 0.4]}))


def test_similar_prints_the_neighbours_table_rows_of_the_asset_found(tmp_path: Path, capsys):
    lookup_tables(tmp_path)
    assert cli.main(["similar", "alph", "--out", str(tmp_path), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["asset_id"], printed["title"], printed["also_matched"]) == (1, "Alpha", ["Alphabet"])
    assert printed["neighbours"] == [
        {"rank": 1, "asset_id": 3, "title": "Alphabet", "score": 0.9},
        {"rank": 2, "asset_id": 2, "title": "Beta", "score": 0.2},
    ]
    assert cli.main(["similar", "2", "--top-k", "1", "--out", str(tmp_path), "--json"]) == 0
    assert [n["title"] for n in json.loads(capsys.readouterr().out)["neighbours"]] == ["Alpha"]


def test_similar_names_the_missing_table_and_the_unknown_asset(tmp_path: Path, capsys):
    lookup_tables(tmp_path, with_neighbours=False)
    assert cli.main(["similar", "Alpha", "--out", str(tmp_path)]) == ExitCode.BAD_INPUT
    assert f"{tmp_path / 'neighbours'} not found: `film2vec train`" in capsys.readouterr().err
    lookup_tables(tmp_path / "full")
    assert cli.main(["similar", "Heat", "--out", str(tmp_path / "full")]) == ExitCode.BAD_INPUT
    assert "'Heat'" in capsys.readouterr().err


def test_help_and_similar_import_neither_spark_nor_torch_nor_mlflow(tmp_path: Path):
    lookup_tables(tmp_path)
    script = f"""
import contextlib, io, sys
from film2vec import cli
with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
    cli.main(["--help"])
    assert cli.main(["similar", "Beta", "--out", {str(tmp_path)!r}]) == 0
print(sorted({{m.split(".")[0] for m in sys.modules}} & {{"pyspark", "torch", "mlflow", "sklearn", "py4j", "delta"}}))
"""
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "[]"


def test_map_files_are_a_png_and_an_html_page(tmp_path: Path):
    xy = np.random.default_rng(9).normal(size=(60, 2))
    colourings = {"genre": [f"g{i % 25}" for i in range(60)], "cluster": [f"c{i % 3}" for i in range(60)]}
    png = plot_map(xy, colourings, tmp_path / "map.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width > height > 300
    page = write_map_html(xy, [f"<asset {i}> & co" for i in range(60)], colourings, tmp_path / "map.html")
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert text.count("<circle") == 120 and "&lt;asset 7&gt; &amp; co" in text and "<asset" not in text
    assert "other" in text  # 25 genres: beyond the 19 most common they share one colour


def test_spark_tastes_and_recommendations_match_the_kernels(spark):
    views = spark.createDataFrame(
        [(1, 10, "2025-01-01"), (1, 11, "2025-01-11"), (2, 12, "2025-01-01"), (3, 10, "2025-01-01")],
        "user_id long, asset_id long, viewed_at string",
    ).selectExpr("user_id", "asset_id", "cast(viewed_at as timestamp) as viewed_at")
    vectors = {10: [1.0, 0.0], 11: [0.0, 2.0], 12: [3.0, 4.0], 13: [-1.0, 0.0]}
    embeddings = spark.createDataFrame(list(vectors.items()), "asset_id long, vector array<float>")
    tastes = user_vectors(views, embeddings, half_life_days=10.0)
    found = {row.user_id: (row.vector, row.n_views) for row in tastes.collect()}
    np.testing.assert_allclose(found[1][0], [1 / 3, 2 / 3], rtol=1e-6)
    assert found[1][1] == 2 and found[3][1] == 1
    candidate_ids = pa.array([10, 12, 13], pa.int64())
    unit = normalised(np.array([vectors[a] for a in (10, 12, 13)]))
    ranked = recommendations(spark, tastes, views, candidate_ids, unit, np.zeros(3), 2).collect()
    by_user = {}
    for row in sorted(ranked, key=lambda r: (r.user_id, r.rank)):
        by_user.setdefault(row.user_id, []).append(row.asset_id)
    assert by_user == {1: [12, 13], 2: [10, 13], 3: [12, 13]}  # watched candidates are never recommended


def test_recommend_and_audit_break_exact_ties_to_the_lower_column_as_nearest_does():
    """One tie rule (nearest.top_k): equal scores go to the lower catalogue column in every caller."""
    tied = np.tile([[0.0, 1.0]], (5, 1))  # five candidates with one vector: every score ties
    columns, _ = rank_candidates(np.array([[0.0, 1.0]]), tied, np.zeros(5), np.array([1]), np.array([1]), 3)
    assert columns.tolist() == [[0, 2, 3]]
    assert top_neighbours(tied, np.array([4]), 3)[0].tolist() == [[0, 1, 2]]
    labels = np.eye(5, dtype=bool)  # each voter carries its own label: the shares name the voters chosen
    shares = label_votes(tied, labels, 2)
    assert shares[4].tolist() == [0.5, 0.5, 0.0, 0.0, 0.0]
    assert shares[0].tolist() == [0.0, 0.5, 0.5, 0.0, 0.0]


def test_similar_says_why_an_asset_it_finds_has_no_vector(tmp_path: Path, capsys):
    write_deltalake(
        tmp_path / "assets", pa.table({"asset_id": [1, 2, 3], "title": ["Alpha", "Beta", "Rare"], "views": [5, 9, 2]})
    )
    neighbours = {"asset_id": [1, 2], "rank": [1, 1], "neighbour_id": [2, 1], "score": [0.5, 0.5]}
    write_deltalake(tmp_path / "neighbours", pa.table(neighbours))
    write_deltalake(tmp_path / "unviewed", pa.table({"asset_id": [4], "title": ["Gamma"]}))
    assert cli.main(["similar", "Gamma", "--out", str(tmp_path)]) == 0
    assert "no vector: it has no views yet" in capsys.readouterr().out
    assert cli.main(["similar", "Rare", "--out", str(tmp_path), "--min-views", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["no_vector"] == "it has 2 viewer(s), fewer than --min-views 3"
    assert cli.main(["similar", "Alpha", "--out", str(tmp_path), "--json"]) == 0
    assert "no_vector" not in json.loads(capsys.readouterr().out)
