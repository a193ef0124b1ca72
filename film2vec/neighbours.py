"""The neighbours table: every asset's k most similar assets by cosine, computed in Spark block by block, or in
this process for a catalogue small enough (`neighbours_on_driver`, the same kernels and the same rows).

Assets take consecutive positions in asset_id order and are cut into blocks of `block_rows`. Every pair of
blocks is one row of a blocks x blocks cross join (nb^2 rows, never assets x assets) and is scored in one
matrix product by `nearest.block_neighbours`; each query block's candidates from all blocks are then merged
to its k best by `nearest.merge_blocks`. Both keep the one rule of `nearest.top_k`: the higher cosine
first, ties to the lower position, that is the lower asset_id.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from film2vec.nearest import block_neighbours, merge_blocks, normalised

BLOCK_ROWS = 2048  # assets per block: a block pair is a 2048 x 2048 score matrix (16 MiB in float32)
DRIVER_ASSETS = 50_000  # at most this many assets, one process scores the catalogue sooner than Spark's jobs start
DRIVER_SCORES = 1 << 23  # query rows x catalogue scored at a time on the driver (64 MiB in float64)


def _block(assets: pa.ListScalar) -> tuple[np.ndarray, pa.Array, np.ndarray]:
    """(positions, asset ids, unit vectors) of one block's list of (position, asset_id, vector)."""
    rows = assets.values
    vectors = rows.field("vector")
    matrix = np.asarray(vectors.flatten()).reshape(len(vectors), -1)
    return rows.field("position").to_numpy(), rows.field("asset_id"), normalised(matrix)


def neighbours_table(embeddings: DataFrame, k: int, block_rows: int = BLOCK_ROWS) -> DataFrame:
    """asset_id, rank (1..k), neighbour_id, score (cosine) of every asset's k nearest other assets (all of
    them when the catalogue has k or fewer others), from `embeddings` (asset_id, vector), one per asset.

    Example::

        neighbours = neighbours_table(spark.read.format("delta").load(config.out("embeddings")), k=10)
    """
    if k < 1 or block_rows < 1:
        raise ValueError(f"neighbours_table: k and block_rows must be at least 1 (got k={k}, block_rows={block_rows})")
    id_type = embeddings.schema["asset_id"].dataType
    score_type = embeddings.schema["vector"].dataType.elementType
    # one sort of the ids alone, not of the vectors, numbers the catalogue
    positions = embeddings.select("asset_id").withColumn(
        "position", F.row_number().over(Window.orderBy("asset_id")).cast("long") - 1
    )
    blocks = (
        embeddings.select("asset_id", "vector")
        .join(positions, "asset_id")
        .groupBy(F.floor(F.col("position") / block_rows).alias("block"))
        .agg(F.collect_list(F.struct("position", "asset_id", "vector")).alias("assets"))
    )
    pairs = blocks.select("block", F.col("assets").alias("queries")).crossJoin(
        blocks.select(F.col("assets").alias("candidates"))
    )
    partitions = int(embeddings.sparkSession.conf.get("spark.sql.shuffle.partitions"))

    candidate_schema = T.StructType(
        [
            T.StructField("block", T.LongType()),
            T.StructField("position", T.LongType()),
            T.StructField("asset_id", id_type),
            T.StructField("neighbour_position", T.LongType()),
            T.StructField("neighbour_id", id_type),
            T.StructField("score", score_type),
        ]
    )

    candidate_columns = candidate_schema.fieldNames()

    def score_pairs(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for block, queries, candidates in zip(*(batch.column(c) for c in ("block", "queries", "candidates"))):
                query_positions, query_ids, query_unit = _block(queries)
                candidate_positions, candidate_ids, candidate_unit = _block(candidates)
                columns, scores = block_neighbours(query_unit, query_positions, candidate_unit, candidate_positions, k)
                rows, slots = np.nonzero(scores > -np.inf)
                chosen = columns[rows, slots]
                yield pa.RecordBatch.from_arrays(
                    [
                        pa.array(np.full(len(rows), block.as_py(), dtype=np.int64)),
                        pa.array(query_positions[rows]),
                        query_ids.take(rows),
                        pa.array(candidate_positions[chosen]),
                        candidate_ids.take(chosen),
                        pa.array(scores[rows, slots]),
                    ],
                    names=candidate_columns,
                )

    def keep_best(candidates: pa.Table) -> pa.Table:
        picked, rank = merge_blocks(
            candidates.column("position").to_numpy(),
            candidates.column("neighbour_position").to_numpy(),
            candidates.column("score").to_numpy(),
            k,
        )
        return pa.table(
            {
                "asset_id": candidates.column("asset_id").take(picked),
                "rank": pa.array(rank, pa.int32()),
                "neighbour_id": candidates.column("neighbour_id").take(picked),
                "score": candidates.column("score").take(picked),
            }
        )

    neighbour_schema = T.StructType(
        [
            T.StructField("asset_id", id_type),
            T.StructField("rank", T.IntegerType()),
            T.StructField("neighbour_id", id_type),
            T.StructField("score", score_type),
        ]
    )
    return (
        pairs.repartition(partitions)
        .mapInArrow(score_pairs, candidate_schema)
        .groupBy("block")
        .applyInArrow(keep_best, neighbour_schema)
    )


def neighbours_on_driver(embeddings: pa.Table, k: int, query_rows: int | None = None) -> pa.Table:
    """The rows of `neighbours_table` computed in this process from (asset_id, vector) in memory: `query_rows`
    queries at a time (default: DRIVER_SCORES scores) against the whole catalogue, positions in asset_id order,
    the one rule of `nearest.top_k`."""
    if k < 1 or (query_rows is not None and query_rows < 1):
        raise ValueError(f"neighbours_on_driver: k and query_rows must be at least 1 (got {k}, {query_rows})")
    ordered = embeddings.select(["asset_id", "vector"]).sort_by("asset_id")
    vectors = ordered.column("vector").combine_chunks()
    unit = normalised(np.asarray(vectors.flatten()).reshape(len(vectors), -1))
    positions = np.arange(len(unit))
    block_rows = query_rows or max(1, DRIVER_SCORES // max(1, len(unit)))
    parts = []
    for start in range(0, len(unit), block_rows):
        queries = positions[start : start + block_rows]
        columns, scores = block_neighbours(unit[queries], queries, unit, positions, k)
        rows, slots = np.nonzero(scores > -np.inf)
        parts.append((queries[rows], columns[rows, slots], slots + 1, scores[rows, slots]))
    query, neighbour, rank, score = (np.concatenate(part) for part in zip(*parts))
    ids = ordered.column("asset_id")
    return pa.table(
        {
            "asset_id": ids.take(query),
            "rank": pa.array(rank, pa.int32()),
            "neighbour_id": ids.take(neighbour),
            "score": pa.array(score),
        }
    )
