"""The neighbours table: every asset's k most similar assets by cosine, computed by Spark's executors, or in
this process for a catalogue small enough (`neighbours_on_driver`): the same kernel and the same rows.

Assets take consecutive positions in asset_id order. The catalogue's unit vectors, cut into shards of
`shard_rows`, are broadcast to the executors (one copy each, never shuffled per pair); the assets to query,
cut into blocks of `block_rows`, stay partitioned. Each task scores a query block against every shard, one
matrix product per shard (`nearest.block_neighbours`), keeps each query's k best of each shard and merges
them (`nearest.merge_blocks`), in the one rule of `nearest.top_k`: the higher cosine first, ties to the lower
position, that is the lower asset_id.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from film2vec.serving import ann
from film2vec.serving.nearest import Vectors, block_neighbours, merge_blocks, top_neighbours

BLOCK_ROWS = 1024  # query assets a task scores at a time
SHARD_ROWS = (
    16_384  # candidate assets per broadcast shard: a block x shard product is 1024 x 16384 (128 MiB in float64)
)
DRIVER_ASSETS = 50_000  # at most this many assets, one process scores the catalogue sooner than Spark's jobs start
DRIVER_SCORES = 1 << 23  # query rows x catalogue scored at a time on the driver (64 MiB in float64)


def _rows(assets: pa.ListScalar) -> tuple[np.ndarray, pa.Array, np.ndarray]:
    """(positions, asset ids, unit vectors) of one list of (position, asset_id, vector)."""
    rows = assets.values
    vectors = Vectors.of(rows.field("asset_id"), rows.field("vector"))
    return rows.field("position").to_numpy(), vectors.ids, vectors.unit()


class Candidates:
    """The kernel both paths share: each query's k best candidates of every shard it is scored against,
    then, once all shards are in, its k best overall (`best`), as positions, ids and cosines."""

    def __init__(self, k: int) -> None:
        self.k, self.parts = k, []

    def score(self, query_positions, query_ids, query_unit, shard_positions, shard_ids, shard_unit) -> None:
        columns, scores = block_neighbours(query_unit, query_positions, shard_unit, shard_positions, self.k)
        rows, slots = np.nonzero(scores > -np.inf)
        chosen = columns[rows, slots]
        self.parts.append(
            (
                query_positions[rows],
                query_ids.take(rows),
                shard_positions[chosen],
                shard_ids.take(chosen),
                scores[rows, slots],
            )
        )

    def best(self) -> pa.Table:
        """asset_id, rank, neighbour_id, score of each query's k best candidates."""
        if not self.parts:
            return pa.table({"asset_id": [], "rank": pa.array([], pa.int32()), "neighbour_id": [], "score": []})
        owners, ids, positions, neighbour_ids, scores = zip(*self.parts)
        picked, rank = merge_blocks(np.concatenate(owners), np.concatenate(positions), np.concatenate(scores), self.k)
        return pa.table(
            {
                "asset_id": pa.concat_arrays(
                    [a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in ids]
                ).take(picked),
                "rank": pa.array(rank, pa.int32()),
                "neighbour_id": pa.concat_arrays(list(neighbour_ids)).take(picked),
                "score": pa.array(np.concatenate(scores)[picked]),
            }
        )


def neighbours_table(
    embeddings: DataFrame, k: int, block_rows: int = BLOCK_ROWS, shard_rows: int = SHARD_ROWS
) -> DataFrame:
    """asset_id, rank (1..k), neighbour_id, score (cosine) of every asset's k nearest other assets (all of
    them when the catalogue has k or fewer others), from `embeddings` (asset_id, vector), one per asset.

    Example::

        neighbours = neighbours_table(spark.read.format("delta").load(config.out("embeddings")), k=10)
    """
    if k < 1 or block_rows < 1 or shard_rows < 1:
        raise ValueError(
            f"neighbours_table: k, block_rows and shard_rows must be at least 1 (got {k}, {block_rows}, {shard_rows})"
        )
    id_type = embeddings.schema["asset_id"].dataType
    score_type = embeddings.schema["vector"].dataType.elementType
    # one sort of the ids alone, not of the vectors, numbers the catalogue
    positions = embeddings.select("asset_id").withColumn(
        "position", F.row_number().over(Window.orderBy("asset_id")).cast("long") - 1
    )
    numbered = embeddings.select("asset_id", "vector").join(positions, "asset_id")
    row = F.struct("position", "asset_id", "vector")

    def cut(size: int, name: str) -> DataFrame:
        return numbered.groupBy(F.floor(F.col("position") / size).alias(name)).agg(
            F.collect_list(row).alias(f"{name}_rows")
        )

    pairs = cut(block_rows, "block").crossJoin(F.broadcast(cut(shard_rows, "shard")))

    def score_blocks(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        found: dict[int, Candidates] = {}  # every pair of a query block is in this task: the shards are broadcast
        for batch in batches:
            for block, queries, shard in zip(*(batch.column(c) for c in ("block", "block_rows", "shard_rows"))):
                found.setdefault(block.as_py(), Candidates(k)).score(*_rows(queries), *_rows(shard))
        for candidates in found.values():
            yield from candidates.best().cast(schema).to_batches()

    schema = pa.schema(
        [
            ("asset_id", _arrow(id_type)),
            ("rank", pa.int32()),
            ("neighbour_id", _arrow(id_type)),
            ("score", _arrow(score_type)),
        ]
    )
    neighbour_schema = T.StructType(
        [
            T.StructField("asset_id", id_type),
            T.StructField("rank", T.IntegerType()),
            T.StructField("neighbour_id", id_type),
            T.StructField("score", score_type),
        ]
    )
    return pairs.mapInArrow(score_blocks, neighbour_schema)


RECALL_SAMPLE = 1_000  # assets whose exact neighbours check an index's recall
DEEPEST_SEARCH = 8_192  # the search depth tuned_index stops doubling at


def recall_of(found: np.ndarray, exact: np.ndarray) -> float:
    """The mean share of each row's exact neighbours (rows of positions) that `found` holds."""
    return float(np.mean([len(set(a) & set(b)) for a, b in zip(found, exact)]) / max(exact.shape[1], 1))


def tuned_index(unit: np.ndarray, k: int, recall: float, seed: int = 0):
    """An HNSW index over the rows of `unit` (film2vec.serving.ann) searching just deep enough to find `recall` of the
    exact k nearest of RECALL_SAMPLE sampled rows, and the recall it found: the depth doubles from 4k until it
    does (or reaches DEEPEST_SEARCH). Every catalogue is measured, since a depth enough for one is too shallow
    for another (deeper for more assets, and for vectors with less structure)."""
    rows = np.random.default_rng(seed).choice(len(unit), min(RECALL_SAMPLE, len(unit)), replace=False)
    exact, _ = top_neighbours(unit, rows, k)
    index = ann.build_index(unit, max(4 * k, 16))
    while True:
        found, _ = ann.search(index, unit[rows], rows, k)
        measured = recall_of(found, exact)
        if measured >= recall or index.hnsw.efSearch >= DEEPEST_SEARCH:
            return index, measured
        index.hnsw.efSearch *= 2


QUERIES_PER_TASK = 50_000  # approximate path: query positions a task searches (it loads the index once)


def approximate_neighbours_table(spark: SparkSession, asset_ids: pa.Array, index: bytes, k: int) -> DataFrame:
    """The rows of `neighbours_table` found by an HNSW index (film2vec.serving.ann) instead of exactly: `index`
    (ann.index_bytes) holds the unit vectors of `asset_ids` at their positions, in asset_id order.

    The index travels to the executors once per task, beside a range of query positions: the task searches
    the index's own vectors in blocks of BLOCK_ROWS, so no vector is shuffled or joined."""
    if k < 1:
        raise ValueError(f"approximate_neighbours_table: k must be at least 1 (got {k})")
    if isinstance(asset_ids, pa.ChunkedArray):
        asset_ids = asset_ids.combine_chunks()
    assets = len(asset_ids)
    tasks = max(1, -(-assets // QUERIES_PER_TASK), int(spark.conf.get("spark.sql.shuffle.partitions")))
    shipped = spark.createDataFrame(
        pa.table(
            {
                "index": pa.array([index], pa.large_binary()),
                "asset_ids": pa.ListArray.from_arrays(pa.array([0, assets], pa.int32()), asset_ids),
            }
        )
    )
    ranges = spark.range(0, tasks, 1, tasks).select(
        F.floor(F.col("id") * assets / tasks).alias("start"), F.floor((F.col("id") + 1) * assets / tasks).alias("stop")
    )
    id_type = shipped.schema["asset_ids"].dataType.elementType
    ids_in = _arrow(id_type)
    schema = pa.schema([("asset_id", ids_in), ("rank", pa.int32()), ("neighbour_id", ids_in), ("score", pa.float32())])

    def search_ranges(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for start, stop, data, ids in zip(*(batch.column(c) for c in ("start", "stop", "index", "asset_ids"))):
                loaded, ids = ann.load_index(data.as_buffer()), ids.values
                for first in range(start.as_py(), stop.as_py(), BLOCK_ROWS):
                    count = min(BLOCK_ROWS, stop.as_py() - first)
                    positions = np.arange(first, first + count)
                    found, scores = ann.search(loaded, loaded.reconstruct_n(first, count), positions, k)
                    rows, slots = np.nonzero(found >= 0)
                    found_rows = {
                        "asset_id": ids.take(pa.array(positions[rows])),
                        "rank": pa.array(slots + 1, pa.int32()),
                        "neighbour_id": ids.take(pa.array(found[rows, slots])),
                        "score": pa.array(scores[rows, slots], pa.float32()),
                    }
                    yield from pa.table(found_rows).cast(schema).to_batches()

    neighbour_schema = T.StructType(
        [
            T.StructField("asset_id", id_type),
            T.StructField("rank", T.IntegerType()),
            T.StructField("neighbour_id", id_type),
            T.StructField("score", T.FloatType()),
        ]
    )
    return ranges.crossJoin(F.broadcast(shipped)).mapInArrow(search_ranges, neighbour_schema)


def _arrow(kind: T.DataType) -> pa.DataType:
    """The Arrow type Spark hands a column of `kind` over in."""
    return {
        T.LongType(): pa.int64(),
        T.IntegerType(): pa.int32(),
        T.StringType(): pa.string(),
        T.FloatType(): pa.float32(),
        T.DoubleType(): pa.float64(),
    }[kind]


def neighbours_on_driver(embeddings: pa.Table, k: int, query_rows: int | None = None) -> pa.Table:
    """The rows of `neighbours_table` computed in this process from (asset_id, vector) in memory: `query_rows`
    queries at a time (default: DRIVER_SCORES scores) against the whole catalogue, positions in asset_id order,
    the one rule of `nearest.top_k`."""
    if k < 1 or (query_rows is not None and query_rows < 1):
        raise ValueError(f"neighbours_on_driver: k and query_rows must be at least 1 (got {k}, {query_rows})")
    ordered = Vectors.of_table(embeddings.sort_by("asset_id"))
    unit, ids = ordered.unit(), ordered.ids
    positions = np.arange(len(unit))
    block_rows = query_rows or max(1, DRIVER_SCORES // max(1, len(unit)))
    parts = []
    for start in range(0, len(unit), block_rows):
        queries = positions[start : start + block_rows]
        candidates = Candidates(k)  # the whole catalogue is one shard here
        candidates.score(queries, ids.take(queries), unit[queries], positions, ids, unit)
        parts.append(candidates.best())
    return pa.concat_tables(parts)
