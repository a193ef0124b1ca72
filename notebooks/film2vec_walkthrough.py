# Databricks notebook source
# MAGIC %md
# MAGIC # film2vec, stage by stage
# MAGIC
# MAGIC From view events to a vector per asset: validate the views, count co-views, draw seasons of
# MAGIC samples, train, ask the registered model for similar assets, evaluate, and put the vectors to use
# MAGIC (tastes, recommendations, audit, clusters, a map). Every cell calls a stage function of the film2vec
# MAGIC library (`film2vec.pairs.stage`, `seasons`, `training`, `evaluation`, `uses`); the widgets above are its
# MAGIC settings (job parameters when run as a job).
# MAGIC
# MAGIC On Databricks the next cell installs the wheel (`python -m pip wheel --no-deps -w dist .`, copied
# MAGIC to the volume it names; or attach it as a cluster library and skip the cell), the profile defaults to
# MAGIC `databricks`, and the tables are read by name when the catalog and schema widgets are set. Elsewhere,
# MAGIC run it as plain Python: `python notebooks/film2vec_walkthrough.py` (widgets take their defaults, or
# MAGIC `FILM2VEC_WIDGET_<NAME>` from the environment).

# COMMAND ----------

# MAGIC %pip install /Volumes/main/default/film2vec/wheels/film2vec-0.1.0-py3-none-any.whl

# COMMAND ----------

import copy

import matplotlib.pyplot as plt
import mlflow
import pandas as pd
from pyspark.sql import functions as F

from film2vec import tables
from film2vec.apps.stage import uses
from film2vec.cli import result
from film2vec.evaluation.stage import evaluate
from film2vec.notebook import config_from_widgets, default_profile
from film2vec.pairs.stage import count_pairs
from film2vec.seasons.stage import sample
from film2vec.spark import get_spark
from film2vec.train.stage import train_vectors

if "dbutils" not in globals():  # outside Databricks: film2vec's stand-ins for the notebook globals
    from film2vec.notebook import LocalDbutils, local_display

    dbutils, display = LocalDbutils(), local_display

dbutils.widgets.dropdown("profile", default_profile(), ["local", "cluster", "databricks"], "Profile")
dbutils.widgets.text("out", "film2vec-notebook", "Output folder")
dbutils.widgets.text("catalog", "", "Catalog of the tables (empty: folders under the output folder)")
dbutils.widgets.text("schema", "", "Schema of the tables")
dbutils.widgets.text("events", "", "Events (empty: the synthetic catalogue)")
dbutils.widgets.text("users", "2000", "Synthetic users")
dbutils.widgets.text("catalogue_size", "500", "Synthetic assets")
dbutils.widgets.text("seasons", "0", "Seasons (0: as many as the vectors improve)")
dbutils.widgets.text("samples_per_view", "30", "Samples per view and season")
dbutils.widgets.text("dim", "32", "Vector dimension")
dbutils.widgets.text("epochs_per_season", "2", "Passes over each season")

# COMMAND ----------

config = config_from_widgets(
    dbutils.widgets,
    {
        "out": "data.out",
        "catalog": "data.catalog",
        "schema": "data.schema",
        "events": "data.events",
        "users": "synthetic.users",
        "catalogue_size": "synthetic.catalogue_size",
        "seasons": "seasons.seasons",
        "samples_per_view": "seasons.samples_per_view",
        "dim": "train.dim",
        "epochs_per_season": "train.epochs_per_season",
    },
)
spark = get_spark(config.spark)
print(f"writing under {config.out('')}")

# COMMAND ----------

# MAGIC %md
# MAGIC ## 1. Views and pair counts
# MAGIC The events (or the synthetic catalogue, generated on first use) are validated into one view per
# MAGIC (user, asset); rows that cannot be used go to `rejects`. Then `co_views(a, b)` counts the users who
# MAGIC watched both.

# COMMAND ----------

pairs_summary = count_pairs(spark, config)
print(result("pairs", pairs_summary))
assets = tables.of(config, "assets").read(spark)
pairs = tables.of(config, "pairs").read(spark)
display(assets.orderBy(F.desc("views")))

# COMMAND ----------

viewers = assets.select("views").toPandas()["views"]
co_views = pairs.groupBy("co_views").count().orderBy("co_views").toPandas()
figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
left.hist(viewers, bins=40)
left.set(xlabel="viewers of an asset", ylabel="assets", title="Popularity")
right.bar(co_views["co_views"], co_views["count"])
right.set(xlabel="co_views", ylabel="ordered pairs", yscale="log", title="Co-view counts")
figure.tight_layout()
display(figure)

# COMMAND ----------

titles = assets.select("asset_id", "title")
display(
    pairs.join(titles.withColumnRenamed("asset_id", "asset_a").withColumnRenamed("title", "title_a"), "asset_a")
    .join(titles.withColumnRenamed("asset_id", "asset_b").withColumnRenamed("title", "title_b"), "asset_b")
    .where(F.col("asset_a") < F.col("asset_b"))
    .orderBy(F.desc("co_views"))
    .select("title_a", "title_b", "co_views")
)

# COMMAND ----------

# MAGIC %md
# MAGIC ## 2. Seasons of samples
# MAGIC Each season draws `samples_per_view` samples per view, origins in proportion to their views,
# MAGIC and a target by a two-step walk (origin → one of its viewers → another asset of theirs); the trainer
# MAGIC draws each sample's uniform negatives from its draw key. Rows hold dense asset indices (`asset_idx`).

# COMMAND ----------

seasons_summary = sample(spark, config)
print(result("sample", seasons_summary))
seasons = tables.of(config, "seasons").read(spark)
display(seasons.groupBy("season").count().orderBy("season"))
display(seasons.where(F.col("season") == 0).limit(10))

# COMMAND ----------

# MAGIC %md
# MAGIC ## 3. Training
# MAGIC The trainer streams each season from Delta into PyTorch on the driver, logs the run to MLflow and
# MAGIC registers a model that returns each asset's most similar assets.

# COMMAND ----------

train_summary = train_vectors(spark, config)
print(result("train", train_summary))
loss = mlflow.MlflowClient().get_metric_history(train_summary["run_id"], "loss")
figure, axis = plt.subplots(figsize=(7, 4))
axis.plot([point.step for point in loss], [point.value for point in loss], marker="o")
axis.set(xlabel="epoch", ylabel="mean softmax cross-entropy", title="Training loss (from the MLflow run)")
display(figure)

# COMMAND ----------

# MAGIC %md
# MAGIC ## 4. Similar assets from the registered model
# MAGIC The model is loaded by its alias, as any consumer would.

# COMMAND ----------

model = mlflow.pyfunc.load_model(f"models:/{config.tracking.model_name}@{config.tracking.alias}")
popular = assets.orderBy(F.desc("views")).limit(5).select("asset_id", "title").toPandas()
similar = model.predict(popular[["asset_id"]], params={"k": 5})
title_of = dict(assets.select("asset_id", "title").toPandas().itertuples(index=False))
display(
    pd.DataFrame(
        {
            "asset": popular["title"],
            "most similar": [[title_of[n] for n in row] for row in similar["neighbours"]],
            "cosine": [[round(float(s), 2) for s in row] for row in similar["scores"]],
        }
    )
)

# COMMAND ----------

# MAGIC %md
# MAGIC ## 5. Evaluation
# MAGIC The fixed protocol (README, "Evaluation"): each user's last 5 views are held out, pairs, seasons and
# MAGIC training run again on the rest (under `evaluation/`), and the new vectors are scored on the held-out
# MAGIC views: Recall@20 and NDCG@20 of the next watch, and GenreP@10 of the genre neighbours.

# COMMAND ----------

evaluation_config = copy.deepcopy(config)  # its own folders and model, never the served tables or alias
evaluation_config.data.out = config.out("evaluation")
evaluation_config.data.catalog = evaluation_config.data.schema = None
evaluation_config.tracking.model_name = f"{config.tracking.model_name}_evaluation"
evaluation = evaluate(spark, evaluation_config)
display(pd.DataFrame([evaluation["figures"]]))

# COMMAND ----------

# MAGIC %md
# MAGIC ## 6. Uses of the vectors
# MAGIC Taste vectors per user, recommendations from a candidate set (here every asset), a metadata audit,
# MAGIC clusters and a 2-D map coloured by genre and by cluster, all written as Delta tables next to the
# MAGIC embeddings and logged to the training run.

# COMMAND ----------

print(result("uses", uses(spark, config)))
display(tables.of(config, "recommendations").read(spark).limit(10))
display(tables.of(config, "clusters").read(spark).limit(10))
figure, axis = plt.subplots(figsize=(8, 8))
axis.imshow(plt.imread(config.out("plots/map.png")))
axis.set_axis_off()
display(figure)
