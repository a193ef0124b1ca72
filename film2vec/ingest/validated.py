"""Views film2vec already validated (evaluate's split) made into the walk's tables on the driver.

`film2vec evaluate` writes DIR/split/train from views that Spark's ingest validated and merged (one per user
and asset) and DIR/split/metadata from the asset index it built. Validating them again checks nothing and
costs Spark's jobs (~8 s of the inputs stage on 100k views), so the asset index, the indexed views and the
unviewed metadata are built here with Arrow, as readers.index_assets and the ingest stage build them in Spark;
tests/test_ingest.py holds the two to the same rows. What the split never holds stops the run instead.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from film2vec.errors import InputError
from film2vec.ingest.readers import ID_COLUMNS


def check_validated(views: pa.Table, where: str) -> None:
    """Stop on what a split evaluate wrote never holds: a missing id, or a (user, asset) twice."""
    rewrite = "it is not the split `film2vec evaluate` writes; run evaluate again to write it"
    for column in ID_COLUMNS:
        missing = views.column(column).null_count
        if missing:
            raise InputError(f"events at {where}: {missing:,} row(s) without {column}; {rewrite}")
    pairs = views.group_by(list(ID_COLUMNS)).aggregate([]).num_rows
    if pairs != views.num_rows:
        repeated = views.num_rows - pairs
        raise InputError(f"events at {where}: {repeated:,} repeated (user_id, asset_id) row(s); {rewrite}")


def index_views(views: pa.Table, metadata: pa.Table) -> tuple[pa.Table, pa.Table, pa.Table]:
    """(assets, views, unviewed) with the schemas Spark's ingest writes: asset indices 0..n-1 in asset id order
    with each asset's views and the metadata's title and genres (null for an asset the metadata lacks); the
    views with their asset_idx; the metadata's assets that no view names."""
    counts = views.group_by("asset_id").aggregate([([], "count_all")]).sort_by("asset_id")
    asset_ids = counts.column("asset_id")
    labelled = pc.index_in(asset_ids, value_set=metadata.column("asset_id"))
    id_type = asset_ids.type
    genres = pa.list_(pa.string())
    assets = pa.table(
        [
            pa.array(np.arange(len(asset_ids), dtype=np.int32)),
            asset_ids,
            counts.column("count_all"),
            metadata.column("title").take(labelled),
            metadata.column("genres").take(labelled).cast(genres),
        ],
        schema=pa.schema(
            [
                pa.field("asset_idx", pa.int32(), nullable=False),
                pa.field("asset_id", id_type),
                pa.field("views", pa.int64(), nullable=False),
                pa.field("title", pa.string()),
                pa.field("genres", genres),
            ]
        ),
    )
    indexed = pa.table(
        [
            views.column("asset_id"),
            views.column("user_id"),
            views.column("viewed_at"),
            pc.index_in(views.column("asset_id"), value_set=asset_ids).cast(pa.int32()),
        ],
        schema=pa.schema(
            [
                pa.field("asset_id", id_type),
                pa.field("user_id", views.schema.field("user_id").type),
                pa.field("viewed_at", views.schema.field("viewed_at").type),
                pa.field("asset_idx", pa.int32(), nullable=False),
            ]
        ),
    )
    unviewed = metadata.filter(pc.invert(pc.is_in(metadata.column("asset_id"), value_set=asset_ids)))
    unviewed = pa.table(
        [unviewed.column("asset_id"), unviewed.column("title"), unviewed.column("genres").cast(genres)],
        names=["asset_id", "title", "genres"],
    )
    return assets, indexed, unviewed


def no_rejects() -> pa.Table:
    """The rejects table of input with nothing rejected, in the schema Spark's ingest writes."""
    return pa.table(
        {"reason": [], "line": [], "source": []},
        schema=pa.schema(
            [pa.field("reason", pa.string()), pa.field("line", pa.string()), pa.field("source", pa.string(), False)]
        ),
    )


def id_types(views: pa.Table) -> dict[str, str]:
    """Each id column's type as the ingest names it: "int" for integers, else "string"."""
    integer = {column: pa.types.is_integer(views.schema.field(column).type) for column in ID_COLUMNS}
    return {column: "int" if integer[column] else "string" for column in ID_COLUMNS}
