"""Recommendations from a candidate set: every user's taste vector against the candidates' unit vectors.

The candidates (an editor's rail, a season's releases) are few, so their vectors travel with the
mapInArrow function to every partition; each block of users is scored with one matrix product and cut
to the top N by film2vec.serving.nearest.top_k. There is never a row-level user x candidate join.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from film2vec.apps.ranking import rank_candidates
from film2vec.serving.nearest import Vectors

SCORES_PER_BLOCK = 1 << 22  # user x candidate scores held at once (8 bytes each)


def _recommend_mapper(candidate_ids: pa.Array, candidate_unit: np.ndarray, prior: np.ndarray, n: int):
    users_per_block = max(1, SCORES_PER_BLOCK // max(1, len(candidate_ids)))

    def recommend(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for whole in batches:
            for start in range(0, whole.num_rows, users_per_block):
                batch = whole.slice(start, users_per_block)
                tastes = Vectors.of(batch.column("user_id"), batch.column("vector")).matrix.astype(np.float64)
                watched = batch.column("watched").fill_null(pa.scalar([], pa.list_(pa.int32())))
                columns, scores = rank_candidates(
                    tastes,
                    candidate_unit,
                    prior,
                    np.diff(watched.offsets.to_numpy()),
                    watched.flatten().to_numpy(zero_copy_only=False).astype(np.int64),
                    n,
                )
                kept = np.isfinite(scores)
                user_rows, rank = np.nonzero(kept)
                yield pa.RecordBatch.from_arrays(
                    [
                        batch.column("user_id").take(pa.array(user_rows)),
                        pa.array(rank.astype(np.int32) + 1),
                        candidate_ids.take(pa.array(columns[kept])),
                        pa.array(scores[kept]),
                    ],
                    names=["user_id", "rank", "asset_id", "score"],
                )

    return recommend


def recommendations(
    spark: SparkSession,
    user_vectors: DataFrame,
    views: DataFrame,
    candidate_ids: pa.Array,
    candidate_unit: np.ndarray,
    prior: np.ndarray,
    n: int,
) -> DataFrame:
    """user_id, rank (1 = best), asset_id, score: each user's top n unwatched candidates."""
    columns = spark.createDataFrame(
        pa.table({"asset_id": candidate_ids, "column": pa.array(np.arange(len(candidate_ids), dtype=np.int32))})
    )
    watched = (
        views.join(F.broadcast(columns), "asset_id").groupBy("user_id").agg(F.collect_list("column").alias("watched"))
    )
    users = user_vectors.select("user_id", "vector").join(watched, "user_id", "left")
    schema = (
        f"user_id {user_vectors.schema['user_id'].dataType.simpleString()}, rank int, "
        f"asset_id {views.schema['asset_id'].dataType.simpleString()}, score double"
    )
    return users.mapInArrow(_recommend_mapper(candidate_ids, candidate_unit, prior, n), schema)
