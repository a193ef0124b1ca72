"""The uses of the vectors, each read from a finished run's Delta tables under --out and written beside them.

    DIR/user_vectors     user_id, vector, n_views
    DIR/recommendations  user_id, rank, asset_id, score
    DIR/audit            asset_id, title, labels, top_label, confidence, own_label_support, predicted_labels, status
    DIR/clusters         cluster, size, top_labels, label_shares, central_asset_ids, central_titles
    DIR/asset_clusters   asset_id, cluster, cosine
    DIR/plots/           map.png, map.html, loss.png
Summaries and pictures go to the MLflow run named by --run-id, else to the run that trained the served vectors.
User-sized work (tastes, recommendations) runs in Spark; catalogue-sized work (audit, clusters, similar,
map) runs on the driver, where the trainer already holds the whole embedding matrix.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pyarrow as pa
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from sklearn.metrics import adjusted_rand_score

from film2vec import tables, tracking
from film2vec.apps.audit import holdout_recovery, judge, label_votes
from film2vec.apps.clusters import describe_clusters, kmeans
from film2vec.apps.maps import map_coordinates
from film2vec.apps.ranking import popularity_prior
from film2vec.apps.recommend import recommendations
from film2vec.apps.tastes import user_vectors
from film2vec.config import Config, ConfigError
from film2vec.errors import InputError
from film2vec.ingest.readers import read_input
from film2vec.labels import label_matrix
from film2vec.plots import plot_loss, plot_map, write_map_html
from film2vec.serving.nearest import Vectors
from film2vec.timing import timed

TOP_LABELS = 3  # labels listed per cluster
LISTED_DISAGREEMENTS = 50  # likely mislabels written to the MLflow run's audit summary


@dataclass(frozen=True)
class Catalogue:
    """The assets with vectors, by asset_idx: ids, unit vectors, titles, viewers and labels."""

    asset_ids: pa.Array
    unit: np.ndarray
    titles: list
    views: np.ndarray
    label_lists: list
    labels: np.ndarray  # assets x label names, boolean
    label_names: tuple[str, ...]


def _labels(spark: SparkSession, config: Config, id_type: T.DataType) -> DataFrame:
    """asset_id, labels (array<string>) from --labels or DIR/assets; a text column is one label."""
    assets_table = tables.of(config, "assets")
    column = config.apps.label_column
    if config.apps.labels:
        source = config.apps.labels
        frame = read_input(spark, source, "labels", ("asset_id",))
    else:
        source, frame = assets_table.where, assets_table.read(spark)
    if column not in frame.columns:
        raise InputError(
            f"labels at {source}: no column {column!r} (found {', '.join(frame.columns)}); name one with --label-column"
        )
    if isinstance(frame.schema[column].dataType, T.ArrayType):
        labels = F.col(column).cast("array<string>")
    else:
        text = F.trim(F.col(column).cast("string"))
        labels = F.when(F.length(text) > 0, F.array(text))
    return frame.select(F.col("asset_id").cast(id_type).alias("asset_id"), labels.alias("labels"))


def catalogue_assets(spark: SparkSession, config: Config) -> DataFrame:
    """asset_id, asset_idx, views, title of DIR/assets and of DIR/unviewed (no index, 0 views) when there is one,
    so that provisional vectors of assets not yet viewed find their titles."""
    unviewed_table = tables.of(config, "unviewed")
    columns = ("asset_id", "asset_idx", "views", "title")
    assets = tables.of(config, "assets").read(spark).select(*columns)
    if not unviewed_table.exists(spark):
        return assets
    unviewed = unviewed_table.read(spark).select(
        "asset_id", F.lit(None).cast("int").alias("asset_idx"), F.lit(0).cast("long").alias("views"), "title"
    )
    return assets.unionByName(unviewed)


def load_catalogue(spark: SparkSession, config: Config, provisional: bool = True) -> Catalogue:
    """Every asset with a vector (without provisional ones unless `provisional`), with its title, viewers and
    labels, collected to the driver; assets without views come last."""
    embeddings = tables.of(config, "embeddings").read(spark)
    if not provisional:
        embeddings = embeddings.where(F.col("source") != "metadata")
    assets = catalogue_assets(spark, config)
    labels = _labels(spark, config, embeddings.schema["asset_id"].dataType).dropDuplicates(["asset_id"])
    table = (
        embeddings.join(assets, "asset_id")
        .join(labels, "asset_id", "left")
        .orderBy(F.col("asset_idx").asc_nulls_last(), "asset_id")
        .toArrow()
    )
    if table.num_rows < 2:
        raise InputError(
            f"{tables.of(config, 'embeddings').where}: {table.num_rows} asset(s) with a vector; need at least 2"
        )
    vectors = Vectors.of_table(table)
    label_lists = table.column("labels").to_pylist()
    matrix, names = label_matrix(label_lists)
    return Catalogue(
        asset_ids=vectors.ids,
        unit=vectors.unit(np.float64),
        titles=table.column("title").to_pylist(),
        views=table.column("views").to_numpy(),
        label_lists=label_lists,
        labels=matrix.toarray(),
        label_names=names,
    )


def _run_id(spark: SparkSession, config: Config) -> str | None:
    """The MLflow run uses are logged to: --run-id, else the run that trained the served vectors (their
    run_id), never merely the experiment's latest run, which may be `evaluate`'s or another job's."""
    tracking.use_store(config.data.out)
    client = MlflowClient()
    if config.apps.run_id:
        try:
            return client.get_run(config.apps.run_id).info.run_id
        except mlflow.exceptions.MlflowException:
            raise ConfigError(
                f"flag --run-id: no MLflow run {config.apps.run_id!r} in {mlflow.get_tracking_uri()}"
            ) from None
    embeddings = tables.of(config, "embeddings").read(spark)
    if "run_id" not in embeddings.columns:
        return None
    served = embeddings.select("run_id").where(F.col("run_id").isNotNull()).limit(1).collect()
    return served[0]["run_id"] if served else None


def log_to_run(
    spark: SparkSession, config: Config, metrics: dict | None = None, dicts: dict | None = None, files=()
) -> str | None:
    """Log metrics, JSON summaries (name -> dict) and files (under uses/) to the run; returns its id."""
    run_id = _run_id(spark, config)
    if run_id is None:
        return None
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics(metrics or {})
        for name, content in (dicts or {}).items():
            mlflow.log_dict(content, f"uses/{name}")
        for path in files:
            mlflow.log_artifact(str(path), "uses")
    return run_id


def tastes(spark: SparkSession, config: Config) -> dict:
    """Write each user's taste vector to DIR/user_vectors.

    Example::

        from film2vec import config, spark
        from film2vec.apps.stage import tastes
        settings = config.load_profile("local"); settings.data.out = "/tmp/f2v"
        tastes(spark.get_spark(settings.spark), settings)
    """
    user_vectors_table = tables.of(config, "user_vectors")
    views = tables.of(config, "views").read(spark)
    embeddings = tables.of(config, "embeddings").read(spark)
    taste = user_vectors(views, embeddings, config.apps.half_life_days, config.apps.half_life_views)
    user_vectors_table.write(taste)
    written = user_vectors_table.read(spark)
    stats = written.agg(F.count("*").alias("users"), F.mean("n_views").alias("mean_views")).first()
    run_id = log_to_run(spark, config, {"taste_users": stats["users"]})
    return {
        "user_vectors": user_vectors_table.where,
        "users": stats["users"],
        "mean_views_with_vectors": round(stats["mean_views"] or 0.0, 2),
        "half_life_views": config.apps.half_life_views,
        "half_life_days": config.apps.half_life_days,
        "mlflow_run": run_id,
    }


def recommend(spark: SparkSession, config: Config) -> dict:
    """Rank the candidates for every user by taste, unwatched only, top N into DIR/recommendations.

    Example::

        from film2vec import config, spark
        from film2vec.apps.stage import recommend
        settings = config.load_profile("local"); settings.data.out = "/tmp/f2v"
        recommend(spark.get_spark(settings.spark), settings)
    """
    recommendations_table = tables.of(config, "recommendations")
    users = tables.of(config, "user_vectors").read(spark)
    views = tables.of(config, "views").read(spark)
    embeddings = tables.of(config, "embeddings").read(spark)
    candidates = embeddings.join(catalogue_assets(spark, config).drop("title"), "asset_id")
    given = None
    if config.apps.candidates:
        chosen = read_input(spark, config.apps.candidates, "candidates", ("asset_id",)).select(
            F.col("asset_id").cast(embeddings.schema["asset_id"].dataType).alias("asset_id")
        )
        given = chosen.distinct().count()
        if given == 0:
            raise InputError(f"candidates at {config.apps.candidates}: no asset ids")
        candidates = candidates.join(chosen, "asset_id", "left_semi")
    table = candidates.orderBy(F.col("asset_idx").asc_nulls_last(), "asset_id").toArrow()
    if table.num_rows == 0:
        raise InputError(f"candidates at {config.apps.candidates}: none of the {given} assets has a vector")
    candidate_vectors = Vectors.of_table(table)
    prior = popularity_prior(table.column("views").to_numpy(), config.apps.popularity_prior)
    ranked = recommendations(
        spark, users, views, candidate_vectors.ids, candidate_vectors.unit(np.float64), prior, config.apps.recommend_n
    )
    recommendations_table.write(ranked)
    written = recommendations_table.read(spark)
    stats = written.agg(F.count("*").alias("rows"), F.countDistinct("user_id").alias("users")).first()
    run_id = log_to_run(spark, config, {"recommended_users": stats["users"], "candidates": table.num_rows})
    return {
        "recommendations": recommendations_table.where,
        "candidates_given": given if given is not None else "every asset with a vector",
        "candidates_with_vectors": table.num_rows,
        "users": stats["users"],
        "rows": stats["rows"],
        "mlflow_run": run_id,
    }


def audit(spark: SparkSession, config: Config) -> dict:
    """Vote every asset's labels from its neighbours into DIR/audit; optionally measure on hidden labels.

    Provisional vectors are left out: they are made of their own labels, so their vote would be circular.

    Example::

        from film2vec import config, spark
        from film2vec.apps.stage import audit
        settings = config.load_profile("local"); settings.data.out = "/tmp/f2v"
        audit(spark.get_spark(settings.spark), settings)
    """
    audit_table = tables.of(config, "audit")
    catalogue = load_catalogue(spark, config, provisional=False)
    if not catalogue.label_names:
        raise InputError(f"no asset with a vector has a label in column {config.apps.label_column!r}; nothing to vote")
    shares = label_votes(catalogue.unit, catalogue.labels, config.apps.audit_k)
    verdict = judge(shares, catalogue.labels, config.apps.audit_confidence)
    names = np.asarray(catalogue.label_names, dtype=object)
    voted = verdict.confidence > 0
    table = pa.table(
        {
            "asset_id": catalogue.asset_ids,
            "title": pa.array(catalogue.titles, pa.string()),
            "labels": pa.array(catalogue.label_lists, pa.list_(pa.string())),
            "top_label": pa.array(np.where(voted, names[verdict.top_label], None), pa.string()),
            "confidence": pa.array(verdict.confidence),
            "own_label_support": pa.array(verdict.own_support, from_pandas=True),
            "predicted_labels": pa.array([names[row].tolist() for row in verdict.predicted], pa.list_(pa.string())),
            "status": pa.array(verdict.status.astype(str)),
        }
    )
    audit_table.write(table)
    statuses, counts = np.unique(verdict.status.astype(str), return_counts=True)
    by_status = dict(zip(statuses.tolist(), counts.tolist()))
    summary = {"audit": audit_table.where, "assets": table.num_rows, "by_status": by_status}
    if config.apps.audit_holdout > 0:
        summary["holdout"] = holdout_recovery(
            catalogue.unit,
            catalogue.labels,
            config.apps.audit_holdout,
            config.apps.audit_k,
            config.apps.audit_confidence,
            config.seed,
        )
    disagreements = np.flatnonzero(verdict.status == "disagrees")
    listed = disagreements[np.argsort(-verdict.confidence[disagreements], kind="stable")][:LISTED_DISAGREEMENTS]
    report = {
        **summary,
        "likely_mislabels": [
            {
                "asset_id": catalogue.asset_ids[row].as_py(),
                "title": catalogue.titles[row],
                "labels": catalogue.label_lists[row],
                "vote": names[verdict.top_label[row]],
                "confidence": round(float(verdict.confidence[row]), 3),
            }
            for row in listed
        ],
    }
    metrics = {f"audit_{status}": count for status, count in summary["by_status"].items()}
    metrics.update({f"audit_holdout_{key}": value for key, value in summary.get("holdout", {}).items()})
    summary["mlflow_run"] = log_to_run(spark, config, metrics, {"audit.json": report})
    return summary


def clusters(spark: SparkSession, config: Config) -> dict:
    """k-means on the unit vectors: DIR/asset_clusters per asset, DIR/clusters described per cluster.

    Example::

        from film2vec import config, spark
        from film2vec.apps.stage import clusters
        settings = config.load_profile("local"); settings.data.out = "/tmp/f2v"
        clusters(spark.get_spark(settings.spark), settings)
    """
    asset_clusters_table = tables.of(config, "asset_clusters")
    clusters_table = tables.of(config, "clusters")
    catalogue = load_catalogue(spark, config)
    clustering = kmeans(catalogue.unit, config.apps.n_clusters, config.seed)
    described = describe_clusters(
        clustering, catalogue.labels, catalogue.label_names, TOP_LABELS, config.apps.central_assets
    )
    for cluster in described:
        rows = cluster.pop("central_rows")
        cluster["central_asset_ids"] = catalogue.asset_ids.take(pa.array(rows, pa.int64())).to_pylist()
        cluster["central_titles"] = [catalogue.titles[row] for row in rows]
    id_type = catalogue.asset_ids.type
    assigned = {
        "asset_id": catalogue.asset_ids,
        "cluster": pa.array(clustering.cluster.astype(np.int32)),
        "cosine": pa.array(clustering.cosine),
    }
    asset_clusters_table.write(pa.table(assigned))
    schema = pa.schema(
        [
            ("cluster", pa.int32()),
            ("size", pa.int64()),
            ("top_labels", pa.list_(pa.string())),
            ("label_shares", pa.list_(pa.float64())),
            ("central_asset_ids", pa.list_(id_type)),
            ("central_titles", pa.list_(pa.string())),
        ]
    )
    clusters_table.write(pa.Table.from_pylist(described, schema))
    labelled = [row for row, found in enumerate(catalogue.label_lists) if found]
    summary = {
        "clusters": clusters_table.where,
        "asset_clusters": asset_clusters_table.where,
        "sizes": [cluster["size"] for cluster in described],
        # the first listed label stands for an asset's label; MovieLens lists genres alphabetically
        "ari_vs_first_label": round(
            adjusted_rand_score([catalogue.label_lists[row][0] for row in labelled], clustering.cluster[labelled]), 4
        )
        if labelled
        else None,
    }
    summary["mlflow_run"] = log_to_run(
        spark,
        config,
        {"n_clusters": len(described), **({"cluster_ari": summary["ari_vs_first_label"]} if labelled else {})},
        {"clusters.json": {**summary, "described": described}},
    )
    return summary


def _loss_history(run_id: str) -> list:
    """The run's logged loss per epoch with its season, as plot_loss reads them."""
    client = MlflowClient()
    season_at = {m.step: m.value for m in client.get_metric_history(run_id, "season")}
    return [
        SimpleNamespace(loss=m.value, season=season_at.get(m.step))
        for m in sorted(client.get_metric_history(run_id, "loss"), key=lambda m: m.step)
    ]


def draw_map(spark: SparkSession, config: Config) -> dict:
    """The 2-D map of the most viewed assets coloured by first label and by cluster, as PNG and HTML,
    plus the loss curve: in DIR/plots (local outputs) and in the MLflow run."""
    catalogue = load_catalogue(spark, config)
    clustered = tables.of(config, "asset_clusters").read(spark).toArrow()
    cluster_of = dict(zip(clustered.column("asset_id").to_pylist(), clustered.column("cluster").to_pylist()))
    shown = np.argsort(-catalogue.views, kind="stable")[: config.apps.map_assets]
    xy = map_coordinates(catalogue.unit[shown], config.seed)
    ids = catalogue.asset_ids.take(pa.array(shown)).to_pylist()
    first_label = [(catalogue.label_lists[row] or ["(none)"])[0] for row in shown]
    cluster = [f"cluster {cluster_of[asset]}" if asset in cluster_of else "(none)" for asset in ids]
    colourings = {config.apps.label_column: first_label, "cluster": cluster}
    hover = [
        f"{catalogue.titles[row] or asset} | {', '.join(catalogue.label_lists[row] or [])} | {group}"
        for row, asset, group in zip(shown, ids, cluster)
    ]
    remote = tables.is_remote(config.data.out)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) if remote else Path(config.out("plots"))
        folder.mkdir(parents=True, exist_ok=True)
        files = [plot_map(xy, colourings, folder / "map.png")]
        files.append(write_map_html(xy, hover, colourings, folder / "map.html"))
        run_id = _run_id(spark, config)
        history = _loss_history(run_id) if run_id else []
        if history:
            files.append(plot_loss(history, folder / "loss.png"))
        log_to_run(spark, config, files=files)
        return {
            "plots": [str(path) for path in files] if not remote else "MLflow run only (remote --out)",
            "assets_on_map": len(shown),
            "mlflow_run": run_id,
        }


def uses(spark: SparkSession, config: Config) -> dict:
    """Every use in turn: tastes, recommendations, audit, clusters and the map; each timed."""
    summary = {}
    for name, use in (
        ("tastes", tastes),
        ("recommend", recommend),
        ("audit", audit),
        ("clusters", clusters),
        ("map", draw_map),
    ):
        summary[name] = timed(name, use, spark, config)
    return summary
