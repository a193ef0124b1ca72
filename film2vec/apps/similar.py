"""Similar assets for one query: find the asset by id or title, then its nearest neighbours by cosine.

`film2vec similar` looks the neighbours up in DIR/neighbours, which training writes, reading the Delta
tables with delta-rs (no Spark, no JVM), so that one lookup takes about a second. When the tables live in a
metastore (--schema), which only Spark can resolve, it asks the registered model (models:/NAME@ALIAS)
instead, by asset id.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from film2vec.config import Config, ConfigError
from film2vec.errors import InputError
from film2vec.tables import read_without_spark


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


def _written(config: Config, table: str, stage: str, columns: list[str], where=None) -> pa.Table:
    """Rows of a table of the run under --out, read without Spark; when missing, an InputError naming its
    command."""
    try:
        return read_without_spark(config.out(table), table, columns, where)
    except InputError:
        raise InputError(
            f"{config.out(table)} not found: `film2vec {stage}` (or `film2vec run`) writes it; run it with the same "
            "--out"
        ) from None


def catalogue_titles(config: Config) -> pa.Table:
    """asset_id, title, views of DIR/assets, then of DIR/unviewed (0 views) when there is one, so that
    provisional vectors of assets not yet viewed are found by their titles too."""
    assets = _written(config, "assets", "pairs", ["asset_id", "title", "views"])
    try:
        unviewed = read_without_spark(config.out("unviewed"), "unviewed", ["asset_id", "title"])
    except InputError:
        return assets
    views = pa.repeat(pa.scalar(0, assets.schema.field("views").type), unviewed.num_rows)
    return pa.concat_tables([assets, unviewed.append_column("views", views).cast(assets.schema)])


def similar(config: Config) -> dict:
    """The asset named by id or title (`film2vec similar QUERY`) and its `--top-k` nearest neighbours with
    titles and cosine scores, as the neighbours table holds them."""
    if not config.apps.similar_to:
        raise ConfigError("film2vec similar: name an asset by id or title, e.g. `film2vec similar 'Toy Story'`")
    if config.data.schema:
        return similar_from_model(config)
    assets = catalogue_titles(config)
    ids, titles = assets.column("asset_id").to_pylist(), assets.column("title").to_pylist()
    row, others = find_asset(config.apps.similar_to, ids, titles, assets.column("views").to_numpy())
    wanted = (ds.field("asset_id") == ids[row]) & (ds.field("rank") <= config.tracking.top_k)
    found = _written(config, "neighbours", "train", ["rank", "neighbour_id", "score"], wanted)
    title_of = dict(zip(ids, titles))
    views = int(assets.column("views")[row].as_py())
    return {
        "asset_id": ids[row],
        "title": titles[row],
        **({} if found.num_rows else {"no_vector": why_no_vector(views, config.train.min_views)}),
        "also_matched": [titles[other] for other in others[:5]],
        "neighbours": [
            {"rank": rank, "asset_id": other, "title": title_of.get(other), "score": round(score, 4)}
            for rank, other, score in sorted(zip(*(found.column(c).to_pylist() for c in found.column_names)))
        ],
    }


def why_no_vector(views: int, min_views: int) -> str:
    """Why an asset found in the catalogue has no row in the served neighbours."""
    if views == 0:
        return "it has no views yet, and no provisional vector from its labels (--cold-start)"
    if views < min_views:
        return f"it has {views} viewer(s), fewer than --min-views {min_views}"
    return "none of its viewers watched another asset, or the served version was trained before its views"


def similar_from_model(config: Config) -> dict:
    """The neighbours of an asset id from the registered model (models:/NAME@ALIAS): the lookup for tables in a
    metastore, which only Spark can resolve."""
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.types import DataType

    from film2vec.tracking import use_store

    use_store(config.data.out)
    uri = f"models:/{config.tracking.model_name}@{config.tracking.alias}"
    try:
        model = mlflow.pyfunc.load_model(uri)
    except mlflow.exceptions.MlflowException as error:
        raise InputError(f"cannot load {uri} for `film2vec similar`: {error}") from None
    query = config.apps.similar_to.strip()
    text_ids = model.metadata.get_input_schema().inputs[0].type == DataType.string
    if not text_ids and not query.lstrip("-").isdigit():
        raise InputError(f"{uri} knows assets by integer id; {query!r} is not one (with --schema, name assets by id)")
    asset_id = query if text_ids else int(query)
    answers = model.predict(pd.DataFrame({"asset_id": [asset_id]}), params={"k": config.tracking.top_k})
    answer = answers.to_dict("records")[0]
    if not answer["known"]:
        raise InputError(f"{uri} has no vector for the asset id {query!r} (with --schema, name assets by id)")
    return {
        "asset_id": asset_id,
        "model": uri,
        "neighbours": [
            {"rank": rank, "asset_id": other, "score": round(float(score), 4)}
            for rank, (other, score) in enumerate(zip(answer["neighbours"], answer["scores"]), start=1)
        ],
    }
