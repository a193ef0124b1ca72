"""Similar assets for one query: find the asset by id or title, then its nearest neighbours by cosine.

`film2vec similar` looks the neighbours up in DIR/neighbours, which training writes, reading the Delta
tables with delta-rs (no Spark, no JVM), so that one lookup takes about a second. `neighbours` searches
vectors held in memory instead: exact (one matrix-vector product), or approximate with a FAISS HNSW index
(`pip install faiss-cpu`, the `ann` extra) above a size threshold.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from film2vec.config import Config, ConfigError
from film2vec.errors import InputError
from film2vec.nearest import top_neighbours

HNSW_LINKS = 32  # graph degree of the HNSW index: recall against memory
HNSW_SEARCH_DEPTH = 128  # candidates explored per query: recall against time


def find_asset(query: str, asset_ids: list, titles: list, views: np.ndarray) -> tuple[int, list[int]]:
    """(row of the asset meant, rows of the other matches): an id, else an exact title (any case),
    else titles containing the query; among several matches the most viewed wins."""
    wanted = query.strip().casefold()
    for matches in (
        [row for row, asset in enumerate(asset_ids) if str(asset).casefold() == wanted],
        [row for row, title in enumerate(titles) if title and title.casefold() == wanted],
        [row for row, title in enumerate(titles) if title and wanted in title.casefold()],
    ):
        if matches:
            ranked = sorted(matches, key=lambda row: (-views[row], row))
            return ranked[0], ranked[1:]
    raise InputError(f"no asset has the id or a title matching {query!r}; try part of a title")


def approximate_neighbours(unit: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, cosines) like serving.top_neighbours, from a FAISS HNSW inner-product index."""
    try:
        import faiss
    except ImportError:
        raise InputError(
            "approximate search needs FAISS: `pip install faiss-cpu` (or film2vec[ann]), or use --similar-method exact"
        ) from None
    index = faiss.IndexHNSWFlat(unit.shape[1], HNSW_LINKS, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efSearch = max(HNSW_SEARCH_DEPTH, k + 1)
    index.add(np.ascontiguousarray(unit, dtype=np.float32))
    cosines, found = index.search(np.ascontiguousarray(unit[rows], dtype=np.float32), k + 1)
    not_self = (found != rows[:, None]) & (found >= 0)
    order = np.argsort(~not_self, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(found, order, axis=1), np.take_along_axis(cosines, order, axis=1).astype(np.float64)


def neighbours(
    unit: np.ndarray, rows: np.ndarray, k: int, method: str, approximate_above: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """(indices, cosines, method used): exact, approximate, or auto (approximate above the size threshold)."""
    if method == "approximate" or method == "auto" and len(unit) > approximate_above:
        return (*approximate_neighbours(unit, rows, k), "approximate")
    return (*top_neighbours(unit, rows, k), "exact")


def read_delta(path: str, written_by: str) -> DeltaTable:
    """The Delta table at `path`; when there is none, an InputError that names the command writing it."""
    try:
        return DeltaTable(path)
    except TableNotFoundError:
        raise InputError(
            f"{path} not found: `film2vec {written_by}` (or `film2vec run`) writes it; run it with the same --out"
        ) from None


def catalogue_titles(config: Config) -> pa.Table:
    """asset_id, title, views of DIR/assets, then of DIR/unviewed (0 views) when there is one, so that
    provisional vectors of assets not yet viewed are found by their titles too."""
    assets = read_delta(config.out("assets"), "pairs").to_pyarrow_table(columns=["asset_id", "title", "views"])
    if not DeltaTable.is_deltatable(config.out("unviewed")):
        return assets
    unviewed = DeltaTable(config.out("unviewed")).to_pyarrow_table(columns=["asset_id", "title"])
    views = pa.repeat(pa.scalar(0, assets.schema.field("views").type), unviewed.num_rows)
    return pa.concat_tables([assets, unviewed.append_column("views", views).cast(assets.schema)])


def similar(config: Config) -> dict:
    """The asset named by id or title (`film2vec similar QUERY`) and its `--top-k` nearest neighbours with
    titles and cosine scores, as the neighbours table holds them."""
    if not config.apps.similar_to:
        raise ConfigError("film2vec similar: name an asset by id or title, e.g. `film2vec similar 'Toy Story'`")
    neighbours = read_delta(config.out("neighbours"), "train")
    assets = catalogue_titles(config)
    ids, titles = assets.column("asset_id").to_pylist(), assets.column("title").to_pylist()
    row, others = find_asset(config.apps.similar_to, ids, titles, assets.column("views").to_numpy())
    wanted = (ds.field("asset_id") == ids[row]) & (ds.field("rank") <= config.tracking.top_k)
    found = neighbours.to_pyarrow_dataset().to_table(filter=wanted, columns=["rank", "neighbour_id", "score"])
    title_of = dict(zip(ids, titles))
    return {
        "asset_id": ids[row],
        "title": titles[row],
        "also_matched": [titles[other] for other in others[:5]],
        "neighbours": [
            {"rank": rank, "asset_id": other, "title": title_of.get(other), "score": round(score, 4)}
            for rank, other, score in sorted(zip(*(found.column(c).to_pylist() for c in found.column_names)))
        ],
    }
