"""User taste vectors: the recency-weighted mean of the unit vectors of what each user watched.

The numerics are `taste_vectors`, pure numpy; `user_vectors` is the Spark job that gathers each user's
views into one row and runs it per partition through mapInArrow.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from film2vec.recency import recency_weights
from film2vec.serving.nearest import Vectors

USERS_PER_BLOCK = 1_024  # users whose views are stacked into one matrix at a time


def taste_vectors(
    unit_views: np.ndarray,
    view_counts: np.ndarray,
    viewed_at: np.ndarray | None,
    half_life_days: float | None,
    half_life_views: float | None = None,
) -> np.ndarray:
    """Per user, the weighted mean of the unit vectors of their views (rows grouped by user, in order), each
    view weighted by its recency (film2vec.recency: halving every `half_life_views` later views and every
    `half_life_days` days; 1 when both are off). Every user needs at least one view.
    """
    view_counts = np.asarray(view_counts, dtype=np.int64)
    if view_counts.size and view_counts.min() < 1:
        raise ValueError("every user needs at least one view")
    if not len(unit_views):
        return np.zeros((0, unit_views.shape[1]))
    weights = recency_weights(view_counts, viewed_at, half_life_days, half_life_views)
    starts = np.cumsum(view_counts) - view_counts
    summed = np.add.reduceat(unit_views * weights[:, None], starts, axis=0)
    return summed / np.add.reduceat(weights, starts)[:, None]


def _taste_mapper(half_life_days: float | None, half_life_views: float | None):
    def taste(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for whole in batches:
            for start in range(0, whole.num_rows, USERS_PER_BLOCK):
                batch = whole.slice(start, USERS_PER_BLOCK)
                views = batch.column("views")
                counts = np.diff(views.offsets.to_numpy()).astype(np.int64)
                flat = views.flatten()
                viewed = Vectors.of(None, flat.field("vector"))
                dim = viewed.matrix.shape[1]
                seconds = flat.field("seconds").to_numpy(zero_copy_only=False).astype(np.float64)
                unit = viewed.unit(np.float64)
                tastes = taste_vectors(unit, counts, seconds, half_life_days, half_life_views)
                values = pa.array(tastes.astype(np.float32).ravel())
                offsets = pa.array(np.arange(0, len(values) + 1, max(dim, 1), dtype=np.int32))
                yield pa.RecordBatch.from_arrays(
                    [batch.column("user_id"), pa.ListArray.from_arrays(offsets, values), pa.array(counts)],
                    names=["user_id", "vector", "n_views"],
                )

    return taste


def user_vectors(
    views: DataFrame, embeddings: DataFrame, half_life_days: float | None, half_life_views: float | None = None
) -> DataFrame:
    """user_id, vector (array<float>), n_views: one row per user with at least one view of an asset with a vector."""
    seconds = F.col("viewed_at").cast("double").alias("seconds")
    grouped = (
        views.join(embeddings, "asset_id")
        .groupBy("user_id")
        .agg(F.collect_list(F.struct("vector", seconds)).alias("views"))
    )
    user_type = views.schema["user_id"].dataType.simpleString()
    schema = f"user_id {user_type}, vector array<float>, n_views long"
    return grouped.mapInArrow(_taste_mapper(half_life_days, half_life_views), schema)
