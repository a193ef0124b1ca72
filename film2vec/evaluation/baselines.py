"""Baselines that film2vec's vectors are measured against: Spark MLlib implicit ALS, the tool a Spark team has.

ALS factors the user × asset view matrix (every view a 1, confidence 1 + alpha); its item factors are asset
vectors too, so the protocol scores them as it scores film2vec's (evaluate.HeldOut). Spark does the fitting
through the DataFrame API; the factors come back to the driver as numpy rows keyed by index.

Example::

    factors = fit_als(interactions, rank=64, settings=config.evaluate, seed=0)  # user_idx, asset_idx columns
    factors.asset_matrix(assets)  # (assets, 64): row = asset_idx, zero for an asset ALS never saw
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyspark.ml.recommendation import ALS
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from film2vec.config import EvaluateConfig
from film2vec.serving.nearest import Vectors


@dataclass(frozen=True)
class Factors:
    """ALS's learnt vectors: users[i] is the index of user_vectors[i], assets[i] that of asset_vectors[i]."""

    users: np.ndarray
    user_vectors: np.ndarray
    assets: np.ndarray
    asset_vectors: np.ndarray

    def user_matrix(self, rows: int) -> np.ndarray:
        """User vectors with row = user index, zero for a user ALS has no factor of."""
        return _matrix(self.users, self.user_vectors, rows)

    def asset_matrix(self, rows: int) -> np.ndarray:
        """Asset vectors with row = asset_idx, zero for an asset ALS has no factor of."""
        return _matrix(self.assets, self.asset_vectors, rows)


def _matrix(index: np.ndarray, vectors: np.ndarray, rows: int) -> np.ndarray:
    matrix = np.zeros((rows, vectors.shape[1]), dtype=vectors.dtype)
    matrix[index] = vectors
    return matrix


def index_users(views: DataFrame) -> DataFrame:
    """The views with user_idx: dense int indices 0..n-1 of user_id in id order (ALS takes int ids only)."""
    users = views.select("user_id").distinct()
    users = users.withColumn("user_idx", (F.row_number().over(Window.orderBy("user_id")) - 1).cast("int"))
    return views.join(users, "user_id")


def fit_als(interactions: DataFrame, rank: int, settings: EvaluateConfig, seed: int) -> Factors:
    """Implicit ALS on (user_idx, asset_idx) views, one row per view; its user and item factors.

    Every view is a rating of 1, so a view's confidence is 1 + settings.als_alpha (Hu, Koren and Volinsky's
    implicit feedback), unviewed pairs are preferences of 0 at confidence 1.
    """
    als = ALS(
        rank=rank,
        maxIter=settings.als_iterations,
        regParam=settings.als_reg_param,
        alpha=settings.als_alpha,
        implicitPrefs=True,
        userCol="user_idx",
        itemCol="asset_idx",
        ratingCol="viewed",
        seed=seed,
    )
    views = interactions.select(
        F.col("user_idx").cast("int"), F.col("asset_idx").cast("int"), F.lit(1.0).cast("float").alias("viewed")
    )
    model = als.fit(views)
    users, user_vectors = _rows(model.userFactors)
    assets, asset_vectors = _rows(model.itemFactors)
    return Factors(users, user_vectors, assets, asset_vectors)


def _rows(factors: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """An ALS factor table (id, features) as (ids, float32 matrix)."""
    table = factors.select("id", "features").toArrow()
    factor_vectors = Vectors.of(table.column("id"), table.column("features"))
    return factor_vectors.ids.to_numpy().astype(np.int64), factor_vectors.matrix
