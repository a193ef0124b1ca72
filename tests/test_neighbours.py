"""The neighbours table: the numpy kernels on hand-checkable arrays, then the Spark job and the driver's against
brute force."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from film2vec.serving.nearest import Vectors, block_neighbours, merge_blocks, normalised, top_k, top_neighbours


def reference_top_k(scores: np.ndarray, positions: np.ndarray, k: int) -> np.ndarray:
    """Every row fully sorted by (-score, position): the rule spelled out, to check the partial selection."""
    positions = np.broadcast_to(positions, scores.shape)
    rows = zip(scores, positions)
    return np.array([sorted(range(scores.shape[1]), key=lambda c: (-row[c], at[c]))[:k] for row, at in rows])


def test_top_k_orders_by_score_then_lower_position():
    scores = np.array([[0.5, 0.9, 0.5, 0.1], [0.2, 0.2, 0.2, 0.2]])
    columns, best = top_k(scores, np.array([3, 0, 1, 2]), 2)
    assert columns.tolist() == [[1, 2], [1, 2]]
    assert best.tolist() == [[0.9, 0.5], [0.2, 0.2]]


@pytest.mark.parametrize("k", [1, 3, 7, 12, 40])
def test_top_k_matches_a_full_sort_with_many_ties(k):
    rng = np.random.default_rng(k)
    scores = rng.integers(0, 4, size=(30, 12)).astype(np.float32)  # a handful of values: ties everywhere
    positions = rng.permutation(12)
    columns, best = top_k(scores, positions, k)
    expected = reference_top_k(scores, positions, k)
    assert np.array_equal(columns, expected)
    assert np.array_equal(best, np.take_along_axis(scores, expected, axis=1))


def test_block_neighbours_leaves_each_query_out_and_marks_missing_candidates():
    unit = normalised(np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]]))
    columns, scores = block_neighbours(unit, np.arange(3), unit, np.arange(3), 3)
    assert columns[:, :2].tolist() == [[1, 2], [0, 2], [1, 0]]
    assert np.isneginf(scores[:, 2]).all()  # two other assets only


def test_a_query_scores_the_matrix_without_copying_it():
    unit = normalised(np.random.default_rng(5).normal(size=(50_000, 32)).astype(np.float32))
    tracemalloc.start()
    try:
        found, scores = top_neighbours(unit, np.array([3, 7]), 10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < unit.nbytes / 4  # a float64 copy of the matrix alone would be twice its size
    exact = unit[[3, 7]].astype(np.float64) @ unit.astype(np.float64).T
    exact[[0, 1], [3, 7]] = -np.inf
    assert np.array_equal(found, np.argsort(-exact, axis=1, kind="stable")[:, :10])
    assert scores.dtype == np.float32 and np.allclose(scores, np.sort(exact, axis=1)[:, ::-1][:, :10])


def test_merge_blocks_keeps_each_owners_best_across_blocks():
    owners = np.array([5, 2, 5, 2, 5, 2])
    positions = np.array([9, 1, 0, 7, 3, 4])
    scores = np.array([0.8, 0.1, 0.8, 0.6, 0.9, 0.6])
    picked, rank = merge_blocks(owners, positions, scores, 2)
    assert list(zip(owners[picked], positions[picked], rank)) == [(2, 4, 1), (2, 7, 2), (5, 3, 1), (5, 0, 2)]


def test_blocks_then_merge_equal_the_whole_matrix():
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(23, 4)).astype(np.float32)
    vectors[[4, 11, 19]] = vectors[8]  # exact ties across blocks
    unit = normalised(vectors)
    expected, expected_scores = top_neighbours(unit, np.arange(23), 5)
    found = []
    for start in range(0, 23, 6):
        for other in range(0, 23, 6):
            queries, candidates = np.arange(start, min(start + 6, 23)), np.arange(other, min(other + 6, 23))
            columns, scores = block_neighbours(unit[queries], queries, unit[candidates], candidates, 5)
            rows, slots = np.nonzero(scores > -np.inf)
            found.append((queries[rows], candidates[columns[rows, slots]], scores[rows, slots]))
    owners, positions, scores = (np.concatenate(part) for part in zip(*found))
    picked, rank = merge_blocks(owners, positions, scores, 5)
    assert np.array_equal(positions[picked].reshape(23, 5), expected)
    assert np.array_equal(scores[picked].reshape(23, 5), expected_scores)
    assert np.array_equal(rank.reshape(23, 5), np.tile(np.arange(1, 6), (23, 1)))


def table_neighbours(
    spark, asset_ids: np.ndarray, vectors: np.ndarray, k: int, block_rows: int, where: str
) -> pa.Table:
    """neighbours_table (Spark, blocks of block_rows) or neighbours_on_driver (block_rows queries at a time) over
    (asset_id, vector), sorted by asset and rank."""
    from film2vec.serving.stage import neighbours_on_driver, neighbours_table

    embeddings = pa.table({"asset_id": asset_ids, "vector": list(vectors.astype(np.float32))})
    embeddings = embeddings.cast(pa.schema([("asset_id", pa.int64()), ("vector", pa.list_(pa.float32()))]))
    if where == "driver":
        found = neighbours_on_driver(embeddings, k, block_rows)
    else:
        shards = block_rows + 13  # query blocks and broadcast shards cut the catalogue differently
        found = neighbours_table(spark.createDataFrame(embeddings), k, block_rows, shards).toArrow()
    return found.sort_by([("asset_id", "ascending"), ("rank", "ascending")])


def brute_force(asset_ids: np.ndarray, vectors: np.ndarray, k: int) -> dict[str, list]:
    """The same columns from top_neighbours over the whole matrix, assets in asset_id order."""
    order = np.argsort(asset_ids)
    ids, unit = asset_ids[order], normalised(vectors[order].astype(np.float32))
    found, scores = top_neighbours(unit, np.arange(len(ids)), k)
    return {
        "asset_id": np.repeat(ids, found.shape[1]).tolist(),
        "rank": np.tile(np.arange(1, found.shape[1] + 1), len(ids)).tolist(),
        "neighbour_id": ids[found].ravel().tolist(),
        "score": scores.ravel().tolist(),
    }


def shuffled_catalogue(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ids out of order (so positions come from sorting them) and random vectors."""
    rng = np.random.default_rng(seed)
    return rng.permutation(np.arange(1_000, 1_000 + 3 * size, 3)), rng.normal(size=(size, 8)).astype(np.float32)


@pytest.mark.parametrize("where", ["spark", "driver"])
def test_table_matches_brute_force_over_several_blocks(spark, where):
    asset_ids, vectors = shuffled_catalogue(230, 0)
    found = table_neighbours(spark, asset_ids, vectors, 7, 50, where)
    assert found.to_pydict() == brute_force(asset_ids, vectors, 7)


@pytest.mark.parametrize("where", ["spark", "driver"])
def test_table_breaks_exact_ties_by_the_lower_asset_id(spark, where):
    asset_ids, vectors = shuffled_catalogue(230, 1)
    rng = np.random.default_rng(2)
    for group in rng.choice(230, size=(6, 5), replace=False):  # 6 vectors held by 5 assets each, across blocks
        vectors[group] = vectors[group[0]]
    found = table_neighbours(spark, asset_ids, vectors, 7, 50, where)
    assert found.to_pydict() == brute_force(asset_ids, vectors, 7)
    first = found.filter(pc.equal(found.column("asset_id"), int(asset_ids[group[0]]))).to_pydict()
    assert first["neighbour_id"][:4] == sorted(asset_ids[group[1:]].tolist())  # four exact ties, lower id first


@pytest.mark.parametrize("where", ["spark", "driver"])
def test_table_with_k_at_least_the_catalogue_and_with_two_assets(spark, where):
    asset_ids, vectors = shuffled_catalogue(12, 3)
    for k in (11, 30):
        found = table_neighbours(spark, asset_ids, vectors, k, 5, where)
        assert found.num_rows == 12 * 11
        assert found.to_pydict() == brute_force(asset_ids, vectors, k)
    pair = table_neighbours(spark, np.array([7, 3]), np.array([[1.0, 0.0], [0.6, 0.8]]), 7, 1, where).to_pydict()
    assert pair["asset_id"] == [3, 7] and pair["neighbour_id"] == [7, 3] and pair["rank"] == [1, 1]
    assert pair["score"] == pytest.approx([0.6, 0.6])


def test_approximate_search_leaves_each_query_out_and_finds_planted_neighbours():
    from film2vec.serving.ann import build_index, search

    rng = np.random.default_rng(4)
    centres = rng.normal(size=(40, 16))
    members = np.repeat(np.arange(40), 6)  # 40 planted groups of 6 near-identical vectors
    unit = normalised((centres[members] + 0.01 * rng.normal(size=(240, 16))).astype(np.float32))
    index = build_index(unit)
    found, scores = search(index, unit, np.arange(240), 5)
    assert not (found == np.arange(240)[:, None]).any()
    assert (members[found] == members[:, None]).all()  # every neighbour is one of its group's 5 others
    assert (np.diff(scores, axis=1) <= 0).all()
    exact, _ = top_neighbours(unit, np.arange(240), 5)
    assert np.array_equal(np.sort(found, axis=1), np.sort(exact, axis=1))


def test_approximate_table_agrees_with_the_exact_one(spark):
    from film2vec.serving.ann import build_index, index_bytes
    from film2vec.serving.stage import approximate_neighbours_table

    asset_ids, vectors = shuffled_catalogue(3_000, 5)
    order = np.argsort(asset_ids)
    embeddings = pa.table({"asset_id": asset_ids[order], "vector": list(vectors[order])})
    index = build_index(Vectors.of_table(embeddings).unit())
    found = approximate_neighbours_table(spark, embeddings.column("asset_id"), index_bytes(index), 10)
    found = found.toArrow().sort_by([("asset_id", "ascending"), ("rank", "ascending")]).to_pydict()
    exact = brute_force(asset_ids, vectors, 10)
    assert found["asset_id"] == exact["asset_id"] and found["rank"] == exact["rank"]
    pairs = zip(np.reshape(found["neighbour_id"], (-1, 10)), np.reshape(exact["neighbour_id"], (-1, 10)))
    assert np.mean([len(set(approximate) & set(best)) for approximate, best in pairs]) / 10 >= 0.99
    unit = dict(zip(asset_ids.tolist(), normalised(vectors)))
    cosines = [unit[a] @ unit[b] for a, b in zip(found["asset_id"], found["neighbour_id"])]
    assert np.allclose(found["score"], cosines, atol=1e-5)


def test_the_index_searches_deeper_until_it_finds_the_recall_asked_for():
    from film2vec.serving.ann import search
    from film2vec.serving.stage import tuned_index

    unit = normalised(np.random.default_rng(6).normal(size=(10_000, 64)).astype(np.float32))  # no structure: hard
    index, recall = tuned_index(unit, 10, 0.99)
    assert recall >= 0.99 and index.hnsw.efSearch > 40  # the first depth (4k) was not enough
    rows = np.arange(0, 10_000, 7)  # other assets than the sample it was tuned on
    found, _ = search(index, unit[rows], rows, 10)
    exact, _ = top_neighbours(unit, rows, 10)
    assert np.mean([len(set(a) & set(b)) for a, b in zip(found, exact)]) / 10 >= 0.97


def test_vectors_read_a_column_as_float32_rows_with_their_ids_and_unit_view():
    rows = [[3.0, 4.0], [0.0, 0.0], [0.0, -2.5]]
    chunked = pa.chunked_array([pa.array(rows[:1], pa.list_(pa.float64())), pa.array(rows[1:], pa.list_(pa.float64()))])
    vectors = Vectors.of(pa.chunked_array([["a"], ["b", "c"]]), chunked)
    assert vectors.ids.to_pylist() == ["a", "b", "c"]
    assert vectors.matrix.dtype == np.float32 and vectors.matrix.tolist() == rows
    assert vectors.unit().dtype == np.float32 and vectors.unit(np.float64).dtype == np.float64
    assert vectors.unit(np.float64).tolist() == [[0.6, 0.8], [0.0, 0.0], [0.0, -1.0]]  # a zero row stays zero
    table = Vectors.of_table(pa.table({"asset_id": [7, 8, 9], "vector": chunked}))
    assert table.ids.to_pylist() == [7, 8, 9] and np.array_equal(table.matrix, vectors.matrix)
    assert Vectors.of(None, pa.array([], pa.list_(pa.float32()))).matrix.shape == (0, 0)
    with pytest.raises(ValueError, match="2 ids for 3 vectors"):
        Vectors.of(pa.array([1, 2]), chunked)
