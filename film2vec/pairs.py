"""Co-view counts: for every ordered pair of distinct assets, the number of distinct users who watched both."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def count_pairs_join(views: DataFrame) -> DataFrame:
    """(asset_a, asset_b, co_views) for a ≠ b, both orders, by a self-join of views on the user.

    `views` holds one row per distinct (user_id, asset_idx). The join pairs each user's assets once
    (a < b), counts, then mirrors; the sampler needs every asset's full neighbour list.
    """
    left = views.select("user_id", F.col("asset_idx").alias("a"))
    right = views.select("user_id", F.col("asset_idx").alias("b"))
    upper = (
        left.join(right, "user_id").where(F.col("a") < F.col("b")).groupBy("a", "b").agg(F.count("*").alias("co_views"))
    )
    mirrored = upper.select(F.col("b").alias("a"), F.col("a").alias("b"), "co_views")
    return upper.unionByName(mirrored)


def with_asset_ids(pairs: DataFrame, assets: DataFrame) -> DataFrame:
    """Replace dense indices (a, b) by the catalogue's own ids, keeping their type."""
    ids = assets.select("asset_idx", "asset_id")
    return (
        pairs.join(ids.withColumnRenamed("asset_id", "asset_a"), F.col("a") == F.col("asset_idx"))
        .drop("asset_idx")
        .join(ids.withColumnRenamed("asset_id", "asset_b"), F.col("b") == F.col("asset_idx"))
        .select("asset_a", "asset_b", F.col("co_views").cast("long").alias("co_views"))
    )
